package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"

	"github.com/IBM/sarama"

	"github.com/kpipe-io/kpipe/internal/telemetry"
)

// Headers kpipe adds to a message it writes to the dead-letter topic, next to the
// message's own headers.
const (
	HeaderError           = "kpipe-error"            // the last error, as text
	HeaderSourceTopic     = "kpipe-source-topic"     // topic the message was consumed from
	HeaderSourcePartition = "kpipe-source-partition" // its partition, decimal
	HeaderSourceOffset    = "kpipe-source-offset"    // its offset, decimal
	HeaderAttempts        = "kpipe-attempts"         // attempts made, decimal
)

// producer writes forwarded messages and dead letters with one sarama AsyncProducer of the
// phase, and finishes their jobs on the broker's ack. It owns the producer window (the
// messages written and not yet acknowledged) and the goroutines that retry failed writes.
type producer struct {
	set   *settings
	async sarama.AsyncProducer
	// window counts the messages written and not yet finished; a byte gate used for a
	// count, so taking and giving back a slot is an atomic operation while it is not full.
	window *byteGate
	// windowBytes bounds the bytes of the messages written and not yet finished.
	windowBytes *byteGate
	retries     goroutines
	log         *slog.Logger
	metrics     *metrics
	ctx         context.Context // the work's: ends at the end of the grace period
	tx          *transaction    // ExactlyOnce's; nil in AtLeastOnce
}

// delivery rides along with a produced dead letter or retried forward
// (ProducerMessage.Metadata) so its ack or error finds the job it belongs to. A first
// forward carries its *job alone: one allocation less per message on the hot path.
type delivery struct {
	job        *job
	deadLetter bool
	cause      error // for a dead letter: the error that sent it there
	dlqTries   int   // dead-letter writes attempted
}

// unacked is the number of slots of the producer window taken.
func (pr *producer) unacked() int { return int(pr.window.used.Load()) }

// forward writes a message to the forward topic; its job finishes on the ack. In
// ExactlyOnce, a message whose writes aborted maxAttempts transactions goes to the
// dead-letter topic instead.
func (pr *producer) forward(j *job) {
	if !pr.acquire(j, waiter{stop: j.part.revoked}) {
		pr.finish(j, resultAbandoned)
		return
	}
	if pr.tx != nil && pr.set.deadLetterTopic != "" {
		if n, err := pr.tx.failures.get(j.msg); n >= pr.set.maxAttempts {
			j.attempt = n
			err = fmt.Errorf("produce to %s: %w", pr.set.forwardTopic, err)
			pr.produce(j, pr.deadLetterMessage(j, err), &delivery{job: j, deadLetter: true, cause: err})
			return
		}
	}
	j.attempt++
	pr.produce(j, pr.forwardMessage(j), j)
}

// deadLetter writes a message to the dead-letter topic; its job finishes on the ack.
func (pr *producer) deadLetter(j *job, cause error) {
	if !pr.acquire(j, waiter{stop: j.part.revoked}) {
		pr.finish(j, resultAbandoned)
		return
	}
	pr.produce(j, pr.deadLetterMessage(j, cause), &delivery{job: j, deadLetter: true, cause: cause})
}

// waiter is how a wait for the producer (window, sarama's input) may end besides the work's
// context, and what to do first when one is about to begin.
type waiter struct {
	stop   <-chan struct{} // the wait ends when it closes; nil: only with the work's context
	before func()          // called before waiting; nil: nothing to do
}

func (w waiter) waiting() {
	if w.before != nil {
		w.before()
	}
}

// acquire takes a slot of the producer window and the message's bytes of it, which bound
// the messages waiting for a broker ack in number and in bytes; false when w.stop or the
// work's context ended first.
func (pr *producer) acquire(j *job, w waiter) bool {
	if j.ackSlot {
		return true
	}
	if !pr.window.tryAcquire(1) {
		w.waiting()
		if !pr.window.acquire(1, pr.ctx.Done(), w.stop) {
			return false
		}
	}
	if !pr.windowBytes.tryAcquire(j.size) {
		w.waiting()
		if !pr.windowBytes.acquire(j.size, pr.ctx.Done(), w.stop) {
			pr.window.release(1)
			return false
		}
	}
	j.ackSlot = true
	return true
}

// finish finishes a job the producer took and gives its window slot and bytes back.
func (pr *producer) finish(j *job, result string) {
	if j.finish(result, pr.metrics) && j.ackSlot {
		pr.windowBytes.release(j.size)
		pr.window.release(1)
	}
}

// produce hands a message to the AsyncProducer; its ack or error comes back to run
// through meta, a *job (a first forward) or a *delivery.
func (pr *producer) produce(j *job, pm *sarama.ProducerMessage, meta any) {
	pm.Metadata = meta
	if pr.ctx.Err() != nil {
		pr.finish(j, resultAbandoned)
		return
	}
	pr.send(j, pm, waiter{})
}

// send puts pm on sarama's input, waiting for room until w.stop closes or the work's context
// ends; j is then abandoned and send returns false.
func (pr *producer) send(j *job, pm *sarama.ProducerMessage, w waiter) bool {
	in := pr.async.Input()
	select {
	case in <- pm: // room in sarama's queue: no select over several channels
		return true
	default:
	}
	w.waiting()
	if pr.ctx.Err() == nil {
		select {
		case in <- pm:
			return true
		case <-pr.ctx.Done():
		case <-w.stop:
		}
	}
	pr.finish(j, resultAbandoned)
	return false
}

// forwardMessage is the message of a forward's write: for the first, the job's own (kept
// when the job is reused); a retry gets a new one, so the job is reused only after a first
// write's ack (see recycle).
func (pr *producer) forwardMessage(j *job) *sarama.ProducerMessage {
	var pm *sarama.ProducerMessage
	switch {
	case j.attempt > 1:
		pm = new(sarama.ProducerMessage)
	case j.pm == nil:
		j.pm = new(sarama.ProducerMessage)
		fallthrough
	default:
		pm = j.pm
	}
	hs := pm.Headers[:0]
	j.fwdValue = j.msg.Value
	*pm = sarama.ProducerMessage{Topic: pr.set.forwardTopic, Value: &j.fwdValue, Headers: appendHeaders(hs, j.msg.Headers)}
	if j.msg.Key != nil {
		j.fwdKey = j.msg.Key
		pm.Key = &j.fwdKey
	}
	return pm
}

// bytesEncoder is a sarama.Encoder of a job's key or value: a pointer to the job's puts it
// in a ProducerMessage without an allocation (a sarama.ByteEncoder, a slice, is copied to
// the heap to become an interface).
type bytesEncoder []byte

func (b *bytesEncoder) Encode() ([]byte, error) { return *b, nil }
func (b *bytesEncoder) Length() int             { return len(*b) }

func (pr *producer) deadLetterMessage(j *job, cause error) *sarama.ProducerMessage {
	m := j.msg
	hs := copyHeaders(m.Headers, 5)
	hs = append(hs,
		sarama.RecordHeader{Key: []byte(HeaderError), Value: []byte(cause.Error())},
		sarama.RecordHeader{Key: []byte(HeaderSourceTopic), Value: []byte(m.Topic)},
		sarama.RecordHeader{Key: []byte(HeaderSourcePartition), Value: []byte(strconv.Itoa(int(m.Partition)))},
		sarama.RecordHeader{Key: []byte(HeaderSourceOffset), Value: []byte(strconv.FormatInt(m.Offset, 10))},
		sarama.RecordHeader{Key: []byte(HeaderAttempts), Value: []byte(strconv.Itoa(j.attempt))},
	)
	pm := &sarama.ProducerMessage{Topic: pr.set.deadLetterTopic, Value: sarama.ByteEncoder(m.Value), Headers: hs}
	if m.Key != nil {
		pm.Key = sarama.ByteEncoder(m.Key)
	}
	return pm
}

func copyHeaders(in []*sarama.RecordHeader, extra int) []sarama.RecordHeader {
	return appendHeaders(make([]sarama.RecordHeader, 0, len(in)+extra), in)
}

// appendHeaders appends the headers in to out, in a new array when they do not fit.
func appendHeaders(out []sarama.RecordHeader, in []*sarama.RecordHeader) []sarama.RecordHeader {
	out = slices.Grow(out, len(in))
	for _, h := range in {
		if h != nil {
			out = append(out, sarama.RecordHeader{Key: h.Key, Value: h.Value})
		}
	}
	return out
}

// run reads the producer's acks (through relayAcks, acks.go) and errors until both channels
// close (close). It never blocks on anything else: a failed message is retried on a
// goroutine of its own.
func (pr *producer) run() {
	succ, errs := relayAcks(pr.async.Successes(), pr.set.producerWindow), pr.async.Errors()
	acks := newAckBatch()
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok || !pr.ackedRun(m, succ, acks) {
				succ = nil
			}
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			d := deliveryOf(e.Msg.Metadata)
			if pr.tx != nil {
				// The transaction aborts: the message is written again when it is consumed again.
				pr.tx.writeFailed(d.job, e.Err)
				pr.finish(d.job, resultAbandoned)
				continue
			}
			if !pr.retries.spawn(func() { pr.failed(d, e.Err) }) {
				pr.finish(d.job, resultAbandoned)
			}
		}
	}
}

// close waits for the retries (they end with the work's context), then flushes the
// AsyncProducer, which closes the channels run reads.
func (pr *producer) close() {
	pr.retries.close()
	pr.async.AsyncClose()
}

// deliveryOf returns the delivery of a produced message from its Metadata (see produce).
func deliveryOf(meta any) *delivery {
	if j, ok := meta.(*job); ok {
		return &delivery{job: j}
	}
	return meta.(*delivery)
}

// acked finishes the job of a message the broker acknowledged; meta is its Metadata.
func (pr *producer) acked(meta any) {
	d, ok := meta.(*delivery)
	if !ok {
		d = &delivery{job: meta.(*job)} // stays on the stack: acked does not keep it
	}
	if pr.tx != nil {
		pr.tx.wrote(d.job)
	}
	if d.deadLetter {
		pr.metrics.deadLettered.Inc()
		pr.log.Warn("message written to the dead-letter topic", "topic", d.job.msg.Topic,
			"partition", d.job.msg.Partition, "offset", d.job.msg.Offset, "attempts", d.job.attempt, "err", d.cause)
		pr.finish(d.job, resultDeadLettered)
		return
	}
	pr.finish(d.job, resultOK)
}

// failed retries a write that failed, after a backoff; forwarded messages go to the
// dead-letter topic after their last attempt, and dead letters are retried until they are
// written: their offset is never committed before.
func (pr *producer) failed(d *delivery, err error) {
	j := d.job
	if d.deadLetter {
		d.dlqTries++
		pr.log.Error("dead-letter write failed; retrying, the offset stays uncommitted",
			"topic", j.msg.Topic, "partition", j.msg.Partition, "offset", j.msg.Offset, "tries", d.dlqTries, "err", err)
		if !j.wait(pr.ctx, pr.set.backoff(d.dlqTries), telemetry.StateDeadLetterBlocked) {
			pr.finish(j, resultAbandoned)
			return
		}
		pr.produce(j, pr.deadLetterMessage(j, d.cause), d)
		return
	}
	err = fmt.Errorf("produce to %s: %w", pr.set.forwardTopic, err)
	final := j.attempt >= pr.set.maxAttempts
	if final && pr.set.deadLetterTopic != "" {
		pr.produce(j, pr.deadLetterMessage(j, err), &delivery{job: j, deadLetter: true, cause: err})
		return
	}
	wait := pr.set.backoff(j.attempt)
	if final {
		wait = pr.set.maxBackoff
		j.stall(pr.metrics, pr.log, err)
	}
	pr.log.Debug("forward failed; retrying", "topic", j.msg.Topic, "partition", j.msg.Partition,
		"offset", j.msg.Offset, "attempt", j.attempt, "err", err)
	pr.metrics.retries.Inc()
	if !j.wait(pr.ctx, wait, telemetry.StateRetrying) {
		pr.finish(j, resultAbandoned)
		return
	}
	j.attempt++
	pr.produce(j, pr.forwardMessage(j), d)
}

// goroutines owns goroutines started on demand (retries) and refuses new ones once closed.
type goroutines struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (g *goroutines) spawn(f func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Go(f)
	return true
}

// close refuses new goroutines and waits for the running ones.
func (g *goroutines) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}
