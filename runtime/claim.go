package runtime

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// maxAdmit bounds the messages a consumer takes into the pool at once.
const maxAdmit = 64

// claims is the sarama.ConsumerGroupHandler of a phase: it admits each claimed partition's
// messages into the pool, commits the finished offsets every commit interval, and drains
// and commits a partition when it is released. It owns the session's partitions and the
// time of the last consumption.
type claims struct {
	set      *settings
	pool     *pool
	log      *slog.Logger
	metrics  *metrics
	sessions *atomic.Int32   // the Pipeline's count of sessions between Setup and Cleanup
	runCtx   context.Context // Run's: once it ended, a released partition gets the grace period
	workCtx  context.Context // the work's: the context of the partitions' messages

	idle idleClock // in a session with nothing consumed

	// consumer is the consumer group's own sarama configuration: Setup sizes its fetches
	// for the partitions claimed. inbound bounds the bytes sarama delivered in the current
	// session and the claims did not admit yet (OnConsume takes them, admission gives them
	// back); a session has its own.
	consumer *sarama.Config
	inbound  atomic.Pointer[inbound]
	// decoded accounts for what the fetches hold decoded (decompressed) beyond the fetch
	// share: it sizes the fetches and takes the excess from the pool and the window. join
	// sets it before the group consumes.
	decoded *decodedFetches

	// client is the consumer group's: Setup resolves the starting offsets with it
	// (startoffset.go). group pauses partitions (pause.go).
	client sarama.Client
	group  pauser
	// tel makes the telemetry records of the commits.
	tel *telemetryWriter

	// tx commits offsets in ExactlyOnce, in the transaction of the messages written; nil in
	// AtLeastOnce, where the consumer group commits them.
	tx *transaction
	// fast is the producer the claims forward to themselves, nil when the pool does
	// (claimforward.go); clock then measures the claims' time waiting for messages.
	fast  *producer
	clock *claimClock

	claimed atomic.Int32 // len(parts), read without the lock (laneShare)

	mu         sync.Mutex
	parts      map[*partition]struct{}
	running    map[topicPartition]*claimRun // the claims being fed (revoke.go)
	live       sarama.ConsumerGroupSession  // between Setup and Cleanup (startoffset.go)
	stopCommit context.CancelFunc
	committer  sync.WaitGroup
}

func (h *claims) Setup(sess sarama.ConsumerGroupSession) error {
	h.sessions.Add(1)
	h.metrics.session.Set(1)
	h.idle.sessionStarted(time.Now())
	h.sizeFetches(sess)
	h.tel.sample() // the start of the busy share's first window
	h.markStarts(sess)
	h.mu.Lock()
	h.parts = map[*partition]struct{}{}
	h.live = sess
	h.mu.Unlock()
	if h.tx != nil {
		h.tx.startSession()
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.stopCommit = cancel
	h.committer.Go(func() { h.commitEvery(ctx, sess) })
	return nil
}

func (h *claims) Cleanup(sess sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	h.live = nil
	h.mu.Unlock()
	h.idle.sessionEnded(time.Now())
	h.stopCommit()
	h.committer.Wait()
	sess.Commit()
	if h.sessions.Add(-1) == 0 {
		h.metrics.session.Set(0)
	}
	h.log.Info("consumer group session ended", "generation", sess.GenerationID())
	return nil
}

// sizeFetches splits the fetch share of the memory budget between the partitions the session
// claims, and gives the session its own gate for the messages delivered and not admitted.
//
// sarama reads Consumer.Fetch.Default when a partition consumer is created and from its
// feeder goroutine only; the consumers of the previous session are closed before the next
// Setup, and this session's are created after it, so the change is not a data race and
// applies to exactly this session. On the incremental protocol Setup runs once per join:
// partitions added later fetch at the size of the first assignment, and a fetch response
// stays within Fetch.MaxBytes, the fetch share, whatever the partitions.
func (h *claims) sizeFetches(sess sarama.ConsumerGroupSession) {
	n := 0
	for _, ps := range sess.Claims() {
		n += len(ps)
	}
	fetch, ratio := h.decoded.session(n)
	h.consumer.Consumer.Fetch.Default = fetch
	h.inbound.Store(newInbound(h.set.memory.inbound, n, sess.Context().Done()))
	h.log.Info("consumer group session started", "generation", sess.GenerationID(), "claims", sess.Claims(),
		"fetchBytesPerPartition", fetch, "decodeRatio", ratio, "memoryBudget", h.set.memory.total)
}

// OnConsume is called by sarama for every message before it enters the partition's
// channel: it takes the message's bytes from the session's inbound gate, waiting while
// the messages delivered and not admitted hold the inbound share, and counts them for the
// decoded fetches' estimate, a partition's deliveredBatch at a time: a count every feeder
// adds to for every message cost more than the rest of the accounting together
// (docs/benchmarks.md, "Runs of a partition's batches").
func (h *claims) OnConsume(m *sarama.ConsumerMessage) {
	n := messageSize(m)
	in := h.inbound.Load()
	if in == nil {
		h.decoded.delivered(n)
		return
	}
	c := in.claim(topicPartition{m.Topic, m.Partition})
	if c.delivered.Add(n) >= deliveredBatch {
		h.decoded.delivered(c.delivered.Swap(0))
	}
	in.take(c, n)
}

// deliveredBatch is the bytes a partition's feeder delivers before they are counted in the
// decoded fetches: their estimate lags by at most this much a partition.
const deliveredBatch = 16 << 10

// ConsumeClaim feeds one partition's messages to the pool until the partition is revoked
// or the session ends, then drains the partition and commits what finished. Each claim
// has its own context and drains on its own: on the incremental protocol a revoked claim's
// context ends when the new assignment arrives (revoke.go) while the session and the other
// claims go on, and its messages in flight have the partition's own context
// (partition.ctx).
func (h *claims) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	pt := newPartition(h.workCtx, h.tx.session(sess), sess, claim, h.log, h.metrics)
	pt.fetch = fetchPause{group: h.group, max: h.set.maxUncommitted, gauge: h.metrics.paused}
	h.tel.adopt(&pt.tel)
	h.track(pt, true)
	defer h.track(pt, false)
	in := h.inbound.Load()
	tp := topicPartition{claim.Topic(), claim.Partition()}
	ic := in.open(tp)
	ctx, done := h.startClaim(sess, tp, in, ic)
	h.feed(ctx, pt, claim.Messages(), in, ic)
	done()
	in.close(ic) // what the claim took and did not admit
	h.release(sess, pt)
	return nil
}

// feed admits the partition's messages into the pool, a batch at a time, until ctx ends or
// msgs closes.
func (h *claims) feed(ctx context.Context, pt *partition, msgs <-chan *sarama.ConsumerMessage, in *inbound, ic *inboundClaim) {
	var (
		b        batch
		src      = source{msgs: msgs, in: in, ic: ic}
		next     *sarama.ConsumerMessage // taken, did not fit in the last batch
		nextHeld bool                    // next was held back (holdback.go)
	)
	h.clock.change(1, 0)
	defer h.clock.change(-1, 0)
	for {
		first, firstHeld := next, nextHeld
		if first == nil {
			if first, firstHeld = h.receive(ctx, &src); first == nil {
				return
			}
		}
		// Take slots and room for the messages already waiting too, and admit them together.
		// In ExactlyOnce, not while a transaction commits.
		admitted := h.tx.admit()
		if admitted == nil {
			return
		}
		firstSize := messageSize(first)
		n, room := h.pool.acquireUpTo(ctx, maxAdmit, firstSize)
		if n == 0 {
			admitted()
			return
		}
		b.reset(first, firstSize, firstHeld)
		var open bool
		next, nextHeld, open = b.takeWaiting(&src, n, room)
		h.pool.release(n-len(b.ms), room-b.bytes)
		h.admit(ctx, pt, &b)
		admitted()
		in.admitted(ic, b.bytes-b.heldBytes)
		if !open || !h.holdBack(ctx, pt, &src) {
			return
		}
	}
}

// receive waits for the partition's next message, and reports whether it was held back;
// nil when ctx ended or sarama closed the channel. The claim clock, when there is one,
// counts the wait.
func (h *claims) receive(ctx context.Context, src *source) (*sarama.ConsumerMessage, bool) {
	if m, held, open := src.poll(); m != nil || !open {
		return m, held
	}
	if h.clock != nil {
		h.clock.change(0, 1)
		defer h.clock.change(0, -1)
	}
	select {
	case <-ctx.Done():
		return nil, false
	case m := <-src.msgs:
		return m, false
	}
}

// batch is the messages of one partition admitted together and their sizes; heldBytes are
// those of the messages that were held back, which the inbound gate no longer counts.
type batch struct {
	ms        []*sarama.ConsumerMessage
	sizes     []int64
	bytes     int64
	heldBytes int64
}

func (b *batch) reset(first *sarama.ConsumerMessage, size int64, held bool) {
	clear(b.ms)
	b.ms, b.sizes = b.ms[:0], b.sizes[:0]
	b.bytes, b.heldBytes = 0, 0
	b.add(first, size, held)
}

func (b *batch) add(m *sarama.ConsumerMessage, size int64, held bool) {
	b.ms, b.sizes = append(b.ms, m), append(b.sizes, size)
	b.bytes += size
	if held {
		b.heldBytes += size
	}
}

// takeWaiting adds the messages waiting in src to the batch, without blocking, up to n
// messages and room bytes; next is a message taken that did not fit (held: it was held
// back), open is false when sarama closed the channel.
func (b *batch) takeWaiting(src *source, n int, room int64) (next *sarama.ConsumerMessage, held, open bool) {
	for len(b.ms) < n {
		m, held, open := src.poll()
		if m == nil {
			return nil, false, open
		}
		size := messageSize(m)
		if b.bytes+size > room {
			return m, held, true
		}
		b.add(m, size, held)
	}
	return nil, false, true
}

// admit takes consumed messages of one partition into the pool, in order; each holds one
// of the slots and its size of the bytes the caller took for them.
func (h *claims) admit(ctx context.Context, pt *partition, b *batch) {
	now := time.Now()
	n, skipped := pt.addAll(b.ms, b.sizes, now)
	h.pool.release(len(b.ms)-n, skipped)
	if n == 0 {
		return
	}
	h.idle.consumed(now)
	if h.pool.runs {
		h.pool.submitRun(pt, slices.Clone(b.ms[:n]), slices.Clone(b.sizes[:n]), now)
		return
	}
	js := newJobs(pt, b.ms[:n], b.sizes[:n], now)
	if h.fast != nil {
		h.forwardAll(ctx, js)
		return
	}
	h.pool.submitAll(js)
}

// release drains a partition that is no longer consumed and commits what finished. A
// revoked partition waits for its messages at most the drain timeout; at shutdown they get
// the whole grace period, which ends workCtx.
func (h *claims) release(sess sarama.ConsumerGroupSession, pt *partition) {
	bound := h.set.drainTimeout
	if h.runCtx.Err() != nil {
		bound = h.set.shutdownTimeout
	}
	pt.drain(h.workCtx, bound, h.pool.recordFinished)
	pt.close()
	h.metrics.finished.release(pt)
	h.commit(sess)
	// The partition is not this replica's any more: its offset gauge goes with it.
	h.metrics.committed.DeleteLabelValues(pt.topic, strconv.Itoa(int(pt.id)))
}

func (h *claims) track(pt *partition, add bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if add {
		h.parts[pt] = struct{}{}
	} else {
		delete(h.parts, pt)
		h.tel.partitionsChanged()
	}
	h.claimed.Store(int32(len(h.parts)))
}

// commitEvery commits the marked offsets of the session on a ticker: batched commits, not
// one per message.
func (h *claims) commitEvery(ctx context.Context, sess sarama.ConsumerGroupSession) {
	t := time.NewTicker(h.set.commitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.commit(sess)
	}
}

// commit commits the offsets the session's partitions reached, each with its telemetry record:
// through the consumer group in AtLeastOnce, in the transaction of the messages written in
// ExactlyOnce. A partition whose offset did not move is committed again, for its record.
func (h *claims) commit(sess sarama.ConsumerGroupSession) {
	h.mu.Lock()
	parts := make([]*partition, 0, len(h.parts))
	for pt := range h.parts {
		parts = append(parts, pt)
	}
	h.mu.Unlock()
	h.pool.recordFinished() // what workers still in a handler finished before it (completions.go)
	h.tel.sample()
	now := time.Now()
	if h.tx != nil {
		h.tx.commit(sess, parts, h.tel, now)
		return
	}
	marked := make([]int64, len(parts))
	for i, pt := range parts {
		marked[i] = pt.markForCommit(h.tel, now)
	}
	sess.Commit()
	for i, pt := range parts {
		if marked[i] >= 0 {
			h.metrics.setCommitted(pt.topic, pt.id, marked[i])
		}
	}
}
