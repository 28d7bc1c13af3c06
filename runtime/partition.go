package runtime

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kpipe-io/kpipe/runtime/offsets"
)

// partition is one claimed partition of one consumer group session. It owns the
// partition's offset tracker, the count of its messages in flight and the tally of those
// finished, all under mu: the count is what drain waits on, and with the tally it is what
// the metrics of finished messages are collected from (finished.go).
type partition struct {
	topic string
	id    int32
	// sess is what offsets are marked in for the periodic commits: group itself, or in
	// ExactlyOnce a session where marking does nothing (transaction.go). group is the consumer
	// group session itself: ExactlyOnce refreshes the telemetry of unmoved offsets through it.
	sess     sarama.ConsumerGroupSession
	group    sarama.ConsumerGroupSession
	log      *slog.Logger
	consumed prometheus.Counter // kpipe_messages_consumed_total of the topic
	revoked  chan struct{}      // closed when the partition starts to drain
	changed  chan struct{}      // signalled whenever a message finishes while draining
	// ctx is what handlers of the partition's messages get: it ends when the runtime gives
	// up on them (drain timeout after revocation, end of the shutdown grace period).
	ctx    context.Context
	cancel context.CancelFunc
	// waiting counts the partition's messages waiting in busy lanes of the pool (handoff.go);
	// while its claim holds its messages back, a worker that takes one out and leaves resumeAt
	// or fewer signals room (holdback.go). resumeAt is -1 otherwise.
	waiting  atomic.Int32
	resumeAt atomic.Int32
	room     chan struct{}
	// run is the partition's run (runs.go), made by its claim on first use.
	run *partRun
	// holdLog limits the log lines of the claim's hold-back pauses; only the claim's
	// goroutine (holdBack) uses it.
	holdLog pauseLog

	mu       sync.Mutex
	tracker  *offsets.Tracker // not safe for concurrent use: only called under mu
	inFlight int
	draining bool  // drain waits for the messages in flight
	closed   bool  // released: finishing messages no longer mark offsets
	marked   int64 // last offset marked for commit, -1 if none
	// start is the offset the claim started at, as the session's offset manager holds it
	// (committed, or resolved in Setup); -1 when sarama resolved it itself (startoffset.go).
	start int64
	// handed is the offset last handed to group's offset manager (start, then what
	// telemetry.go hands it): the manager holds exactly this offset, so the commit metadata
	// of an unmoved offset can be refreshed (ResetOffset) without moving it back.
	handed int64
	tel    partitionTelemetry // telemetry.go
	fin    finishedTally      // finished.go
	fetch  fetchPause         // pause.go: set before the claim admits anything
}

func newPartition(ctx context.Context, sess, group sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim, log *slog.Logger, m *metrics) *partition {
	ctx, cancel := context.WithCancel(ctx)
	topic, id := claim.Topic(), claim.Partition()
	start := max(claim.InitialOffset(), -1) // sarama's OffsetNewest and OffsetOldest are negative
	pt := &partition{
		ctx: ctx, cancel: cancel,
		topic: topic, id: id, sess: sess, group: group, start: start, handed: start,
		tel:      newPartitionTelemetry(time.Now()),
		consumed: m.consumed.WithLabelValues(topic),
		tracker:  offsets.New(),
		log:      log.With("topic", topic, "partition", id),
		revoked:  make(chan struct{}),
		changed:  make(chan struct{}, 1),
		room:     make(chan struct{}, 1),
		marked:   -1,
	}
	pt.resumeAt.Store(-1)
	m.finished.add(pt)
	return pt
}

// addAll starts tracking the offsets of consumed messages, admitted at now, and counts them
// in flight. A message delivered twice is logged and left out: ms and sizes (each message's
// bytes) are compacted in place to the messages taken, n of them; skipped is the bytes left
// out.
func (pt *partition) addAll(ms []*sarama.ConsumerMessage, sizes []int64, now time.Time) (n int, skipped int64) {
	pt.mu.Lock()
	pt.tel.forgetAdmitted(pt.tracker)
	for i, m := range ms {
		if err := pt.tracker.AddStamped(m.Offset, stampOf(m)); err != nil {
			pt.log.Warn("skipping a message delivered twice", "err", err)
			skipped += sizes[i]
			continue
		}
		ms[n], sizes[n] = m, sizes[i]
		n++
	}
	pt.inFlight += n
	if n > 0 {
		pt.tel.admitted(ms[0].Offset, now)
		pt.pauseIfFullLocked()
	}
	pt.mu.Unlock()
	if n > 0 {
		pt.consumed.Add(float64(n))
	}
	return n, skipped
}

// complete records a finished message, its result (resultIndexOK or
// resultIndexDeadLettered) and the time it took since it was admitted, and moves the offset
// to mark when it advanced. The offset is handed to sarama (MarkOffset) only before a commit
// (markForCommit), not for every message.
func (pt *partition) complete(offset int64, result int, took time.Duration) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.completeLocked(offset, result, took)
	pt.signal()
}

// completeAll is complete for messages of the partition that succeeded together, finished
// at now (acks.go): one lock for all of them.
func (pt *partition) completeAll(js []*job, now time.Time) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	for _, j := range js {
		pt.completeLocked(j.offset, resultIndexOK, now.Sub(j.start))
	}
	pt.signal()
}

// completeRun is complete for messages of the partition a worker's handler finished back to
// back (completions.go): one lock for all of them, each with the time it took.
func (pt *partition) completeRun(offsets []int64, took []time.Duration) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	for i, off := range offsets {
		pt.completeLocked(off, resultIndexOK, took[i])
	}
	pt.signal()
}

// completeLocked records one finished message, its result and the time it took; pt.mu is
// held.
func (pt *partition) completeLocked(offset int64, result int, took time.Duration) {
	pt.fin.observe(result, took)
	pt.inFlight--
	pt.tel.finished(offset)
	if !pt.closed {
		pt.doneLocked(offset)
	}
}

// doneLocked records offset finished in the tracker and moves the offset to mark when it
// advanced. pt.mu is held.
func (pt *partition) doneLocked(offset int64) {
	next, advanced, err := pt.tracker.Done(offset)
	if err != nil {
		pt.log.Error("offset tracking", "err", err)
		return
	}
	if advanced {
		pt.marked = next
		pt.resumeIfRoomLocked()
	}
}

// markForCommit marks the partition's offset to commit in the session, with the telemetry
// record w writes at now, and returns it: the offset finished messages reached, else the
// offset the claim started at, -1 if neither is known. An unmoved offset is marked again so
// that its record is refreshed (see handed).
func (pt *partition) markForCommit(w *telemetryWriter, now time.Time) int64 {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	off := pt.committableLocked()
	if off >= 0 {
		pt.handLocked(pt.sess, off, w.encodeLocked(pt, now))
	}
	return off
}

// committableLocked is the offset to commit: the one finished messages reached, else the
// claim's start, -1 if neither is known. pt.mu is held.
func (pt *partition) committableLocked() int64 {
	if pt.marked >= 0 {
		return pt.marked
	}
	return pt.start
}

// handLocked hands off (with its commit metadata) to sess's offset manager. sarama's
// MarkOffset only takes an offset above the one held, ResetOffset one at or below it: an
// unmoved offset is reset to itself, which changes only its metadata. pt.mu is held.
func (pt *partition) handLocked(sess sarama.ConsumerGroupSession, off int64, meta string) {
	switch {
	case off < pt.handed: // never: offsets only grow; ResetOffset would move the offset back
		return
	case off > pt.handed:
		sess.MarkOffset(pt.topic, pt.id, off, meta)
	default:
		sess.ResetOffset(pt.topic, pt.id, off, meta)
	}
	pt.handed = off
}

// abandon records a message given up on: its offset is never marked, so neither is any
// later one of this claim, and the message is consumed again after the partition is released.
func (pt *partition) abandon(offset int64) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.fin.results[resultIndexAbandoned]++
	pt.inFlight--
	pt.tel.finished(offset)
	pt.signal()
}

// signal wakes drain; pt.mu is held.
func (pt *partition) signal() {
	if !pt.draining {
		return
	}
	select {
	case pt.changed <- struct{}{}:
	default:
	}
}

func (pt *partition) isRevoked() bool {
	select {
	case <-pt.revoked:
		return true
	default:
		return false
	}
}

func (pt *partition) markedOffset() int64 {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.marked
}

// drain stops new work for the partition (messages not yet started are abandoned) and waits
// for the messages in flight to finish, at most bound or until ctx ends. recordFinished
// records what the workers finished and hold (completions.go), once no handler of the
// partition can start any more: a worker whose handler hangs holds the partition's messages
// it finished before.
func (pt *partition) drain(ctx context.Context, bound time.Duration, recordFinished func()) {
	close(pt.revoked)
	recordFinished()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	for {
		pt.mu.Lock()
		pt.draining = true
		n := pt.inFlight
		pt.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-pt.changed:
		case <-timer.C:
			pt.log.Warn("partition released with messages still in flight; they will be consumed again", "inFlight", n, "bound", bound)
			return
		case <-ctx.Done():
			pt.log.Warn("grace period over; partition released with messages in flight; they will be consumed again", "inFlight", n)
			return
		}
	}
}

// close stops marking offsets for the partition, cancels the context of its messages
// still running and resumes its fetching if it was paused; the commit that follows marks the
// last offset.
func (pt *partition) close() {
	pt.cancel()
	pt.mu.Lock()
	pt.closed = true
	pt.unpauseLocked()
	pt.mu.Unlock()
}
