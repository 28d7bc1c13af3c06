package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// transaction is the Kafka transaction of an ExactlyOnce phase: the messages forwarded, the
// dead letters and the consumed offsets of one commit interval are committed together or not
// at all. It owns the transactional producer's state (begin, commit, abort), the admission
// gate that keeps new messages out while a transaction commits, and the highest offset written
// per partition in the open transaction.
//
// A commit waits until every message admitted in the interval is finished (written and
// acknowledged, or given up on), then commits the offsets the partitions' trackers reached. An
// output written for an offset at or past that point (a message before it was given up on, or
// a write failed) would be committed without its offset: the transaction is aborted instead,
// and the messages are consumed again from the offsets last committed. Consuming again needs a
// new consumer group session: when the session ends anyway (a rebalance, a shutdown) the next
// one starts from the committed offsets; otherwise the phase is restarted.
type transaction struct {
	set      *settings
	async    sarama.AsyncProducer
	pool     *pool
	out      *producer
	log      *slog.Logger
	metrics  *metrics
	failures *writeFailures // the Pipeline's: survives the aborts and restarts it counts
	restart  func()         // ends the phase
	ctx      context.Context

	admission sync.RWMutex // held for writing while a transaction commits
	commitMu  sync.Mutex   // one commit at a time

	mu        sync.Mutex
	written   map[*partition]int64 // highest offset written in the open transaction
	committed map[*partition]int64 // offset last committed per partition of the session
	doomed    error                // why the open transaction must abort
	broken    bool                 // aborted in this session: nothing more admitted or committed in it
}

// errTxnShutdown is the cause of an abort when the grace period ended with messages in flight.
var errTxnShutdown = errors.New("the grace period ended with messages in flight")

// applyExactlyOnce makes the producer of sc transactional with the given id. A transactional
// producer is idempotent, which needs one request in flight per broker and acks from all
// in-sync replicas.
func applyExactlyOnce(sc *sarama.Config, id string) {
	sc.Producer.Idempotent = true
	sc.Producer.Transaction.ID = id
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Net.MaxOpenRequests = 1
	if sc.Producer.Retry.Max < 1 {
		sc.Producer.Retry.Max = 1
	}
	// A new owner of a partition waits for the last owner's transaction to end before it
	// reads the committed offset (UNSTABLE_OFFSET_COMMIT, retried). A commit takes about a
	// commit interval; sarama's 3 retries would end the session and rebalance the group
	// instead. (kfake answers it for the whole group while any member's transaction holds
	// offsets, Kafka for the partitions concerned only.)
	sc.Consumer.Offsets.Retry.Max = max(sc.Consumer.Offsets.Retry.Max, 20)
}

// checkExactlyOnce refuses a configuration (after WithSaramaConfig) that lost what ExactlyOnce
// needs.
func checkExactlyOnce(sc *sarama.Config) error {
	switch {
	case sc.Producer.Transaction.ID == "":
		return errors.New("processor.forward.delivery ExactlyOnce: the producer has no transactional id")
	case !sc.Producer.Idempotent || sc.Net.MaxOpenRequests != 1 || sc.Producer.RequiredAcks != sarama.WaitForAll:
		return errors.New("processor.forward.delivery ExactlyOnce needs an idempotent producer: Producer.Idempotent, Net.MaxOpenRequests 1 and RequiredAcks WaitForAll")
	case sc.Consumer.IsolationLevel != sarama.ReadCommitted:
		return errors.New("processor.forward.delivery ExactlyOnce needs Consumer.IsolationLevel ReadCommitted")
	}
	return nil
}

// transactionalID is the producer's transactional id: stable for one pod (its hostname, the
// pod name, survives container restarts) and distinct between the pods of a pipeline. A
// restarted container fences its previous incarnation at once; a zombie of another pod is
// fenced by the group generation its offsets carry (see docs/runtime.md).
func transactionalID(group, instance string) string {
	return fmt.Sprintf("kpipe-%s-%s", group, replicaName(instance))
}

// beginTransactions gives an ExactlyOnce phase its transaction and begins the first one.
func (ph *phase) beginTransactions(async sarama.AsyncProducer) error {
	p := ph.p
	t := &transaction{set: &p.set, async: async, pool: ph.pool, out: ph.out, log: p.log, metrics: p.metrics,
		failures: &p.writeFailures, restart: ph.stopConsuming, ctx: ph.workCtx,
		written: map[*partition]int64{}, committed: map[*partition]int64{}}
	if err := async.BeginTxn(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	ph.claims.tx, ph.out.tx = t, t
	return nil
}

// admit holds the admission gate while a claim admits messages; it returns the function that
// lets go of it, or nil when the session's transaction aborted and nothing more is admitted.
// It is a no-op without a transaction.
func (t *transaction) admit() (done func()) {
	if t == nil {
		return func() {}
	}
	t.admission.RLock()
	t.mu.Lock()
	broken := t.broken
	t.mu.Unlock()
	if broken {
		t.admission.RUnlock()
		return nil
	}
	return t.admission.RUnlock
}

// session is what the partitions of sess mark their offsets in: sess itself, or in ExactlyOnce
// a session where marking does nothing, so that the consumer group never commits an offset
// outside a transaction.
func (t *transaction) session(sess sarama.ConsumerGroupSession) sarama.ConsumerGroupSession {
	if t == nil {
		return sess
	}
	return unmarkedSession{sess}
}

type unmarkedSession struct{ sarama.ConsumerGroupSession }

func (unmarkedSession) MarkOffset(string, int32, int64, string)  {}
func (unmarkedSession) ResetOffset(string, int32, int64, string) {}

// startSession begins a transaction for a new session when the last one ended in an abort.
func (t *transaction) startSession() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.broken = false
	t.committed = map[*partition]int64{}
	if t.async.TxnStatus()&sarama.ProducerTxnFlagInTransaction != 0 {
		return
	}
	if err := t.async.BeginTxn(); err != nil {
		t.log.Error("cannot begin a transaction; restarting", "err", err)
		t.broken = true
		t.restart()
	}
}

// wrote records a message of the open transaction acknowledged by the broker.
func (t *transaction) wrote(j *job) {
	t.mu.Lock()
	if off, ok := t.written[j.part]; !ok || j.msg.Offset > off {
		t.written[j.part] = j.msg.Offset
	}
	t.mu.Unlock()
}

// writeFailed dooms the open transaction: the broker refused a message of it, and a
// transactional producer cannot leave a failed message out of the transaction.
func (t *transaction) writeFailed(j *job, err error) {
	// A write refused because the transaction had already failed is not the message's fault.
	if !errors.Is(err, sarama.ErrTransactionNotReady) {
		t.failures.add(j.msg, err)
	}
	t.mu.Lock()
	if t.doomed == nil {
		t.doomed = fmt.Errorf("write of %s/%d@%d failed: %w", j.msg.Topic, j.msg.Partition, j.msg.Offset, err)
	}
	t.mu.Unlock()
}

// commit commits the open transaction with the offsets the partitions reached and their
// telemetry records (w, at now), or aborts it, then begins the next one. sess is the session
// whose generation the offsets carry. When the transaction would commit nothing, it stays
// open and empty, and the records are refreshed through the group's commit instead
// (refreshIdle).
func (t *transaction) commit(sess sarama.ConsumerGroupSession, parts []*partition, w *telemetryWriter, now time.Time) {
	t.commitMu.Lock()
	defer t.commitMu.Unlock()
	t.admission.Lock()
	defer t.admission.Unlock()
	if t.isBroken() {
		return
	}
	if !t.quiesce() {
		t.abort(sess, errTxnShutdown)
		return
	}
	txOffsets, changed, err := t.offsets(parts, w, now)
	if err != nil {
		t.abort(sess, err)
		return
	}
	if !changed {
		t.refreshIdle(sess, txOffsets)
		return
	}
	offsets := map[string][]*sarama.PartitionOffsetMetadata{}
	for _, o := range txOffsets {
		offsets[o.pt.topic] = append(offsets[o.pt.topic], &sarama.PartitionOffsetMetadata{Partition: o.pt.id, Offset: o.offset, Metadata: &o.meta})
	}
	meta := sarama.NewConsumerGroupMetadataFromSession(sess, t.set.group, nil)
	if err := t.async.AddOffsetsToTxnWithGroupMetadata(offsets, meta); err != nil {
		t.abort(sess, fmt.Errorf("add offsets to the transaction: %w", err))
		return
	}
	if err := t.async.CommitTxn(); err != nil {
		t.abort(sess, fmt.Errorf("commit transaction: %w", err))
		return
	}
	t.committedOffsets(parts, txOffsets)
	t.metrics.transactions.WithLabelValues("committed").Inc()
	if err := t.async.BeginTxn(); err != nil {
		t.abort(sess, fmt.Errorf("begin transaction: %w", err))
	}
}

// quiesce waits until every message admitted is finished: none holds a slot of the pool or
// of the producer window. False when the work's context ended first.
func (t *transaction) quiesce() bool {
	for !t.pool.empty() || t.out.unacked() > 0 {
		if t.ctx.Err() != nil {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

func (t *transaction) isBroken() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.broken
}

// offsets is what the transaction commits for parts, each offset with its telemetry record
// (w, at now): every partition's offset, moved or not (unmoved ones for their record);
// changed is false when none moved and nothing was written. An error when the transaction
// holds a message whose offset it would not commit, or a write of it failed.
func (t *transaction) offsets(parts []*partition, w *telemetryWriter, now time.Time) (offsets []txOffset, changed bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.doomed != nil {
		return nil, false, t.doomed
	}
	moved := 0
	seen := make(map[*partition]bool, len(parts))
	for _, pt := range parts {
		seen[pt] = true
		next := pt.markedOffset()
		if wr, ok := t.written[pt]; ok && (next < 0 || wr >= next) {
			return nil, false, fmt.Errorf("%s/%d: offset %d was written but an earlier message was given up on", pt.topic, pt.id, wr)
		}
		off := next
		if last, ok := t.committed[pt]; next < 0 || (ok && next <= last) {
			off = pt.start // unmoved: the claim's start, or what this session committed
			if ok {
				off = last
			}
		} else {
			moved++
		}
		if off >= 0 {
			offsets = append(offsets, txOffset{pt: pt, offset: off, meta: w.encode(pt, now)})
		}
	}
	for pt := range t.written {
		if !seen[pt] {
			return nil, false, fmt.Errorf("%s/%d: written after its partition was released", pt.topic, pt.id)
		}
	}
	return offsets, moved > 0 || len(t.written) > 0, nil
}

// committedOffsets records a committed transaction, whose offsets were offs.
func (t *transaction) committedOffsets(parts []*partition, offs []txOffset) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.written = map[*partition]int64{}
	for _, pt := range parts {
		if next := pt.markedOffset(); next >= 0 {
			t.committed[pt] = next
			t.metrics.setCommitted(pt.topic, pt.id, next)
			t.failures.forget(pt.topic, pt.id, next)
		}
	}
	syncGroupOffsets(offs)
}

// abort aborts the open transaction: nothing more of this session is admitted or committed.
// The session's messages are consumed again from the offsets last committed, by the next
// session; when this one goes on, the phase is restarted to get one.
func (t *transaction) abort(sess sarama.ConsumerGroupSession, cause error) {
	t.log.Warn("transaction aborted; its messages will be consumed again", "generation", sess.GenerationID(), "err", cause)
	t.metrics.transactions.WithLabelValues("aborted").Inc()
	if err := t.async.AbortTxn(); err != nil {
		t.log.Error("abort transaction", "err", err)
	}
	t.mu.Lock()
	t.broken, t.doomed = true, nil
	t.written = map[*partition]int64{}
	t.mu.Unlock()
	if sess.Context().Err() == nil && t.ctx.Err() == nil {
		t.restart()
	}
}

// writeFailures counts, across aborts and restarts, the failed writes of each message that
// aborted a transaction, so a message the broker keeps refusing goes to the dead-letter topic
// after its attempts instead of aborting every transaction.
type writeFailures struct {
	mu sync.Mutex
	m  map[failureKey]failure
}

type failureKey struct {
	topic     string
	partition int32
	offset    int64
}

type failure struct {
	count int
	err   error
}

func (w *writeFailures) add(m *sarama.ConsumerMessage, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[failureKey]failure{}
	}
	k := failureKey{m.Topic, m.Partition, m.Offset}
	w.m[k] = failure{count: w.m[k].count + 1, err: err}
}

// get is the failed writes of a message and the last error.
func (w *writeFailures) get(m *sarama.ConsumerMessage) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.m[failureKey{m.Topic, m.Partition, m.Offset}]
	return f.count, f.err
}

// forget drops the failures of a partition's messages below a committed offset.
func (w *writeFailures) forget(topic string, partition int32, below int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.m {
		if k.topic == topic && k.partition == partition && k.offset < below {
			delete(w.m, k)
		}
	}
}
