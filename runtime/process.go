package runtime

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
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

// job is one consumed message on its way through the pool.
type job struct {
	msg      *sarama.ConsumerMessage
	part     *partition
	lane     laneKey // set by the pool, in Partition and Key ordering
	start    time.Time
	attempt  int  // attempts started so far
	ackSlot  bool // holds a slot of the producer window
	stalled  bool // past its attempts with no dead-letter topic (kpipe_messages_stalled)
	finished atomic.Bool

	// The Message of the first attempt and room for its headers, allocated with the job.
	// Retries get a Message of their own, so a handler that kept the first one never sees
	// it change.
	firstMsg Message
	firstHdr [2]Header
}

// delivery rides along with a produced message (ProducerMessage.Metadata) so its ack or
// error finds the job it belongs to.
type delivery struct {
	job        *job
	deadLetter bool
	cause      error // for a dead letter: the error that sent it there
	dlqTries   int   // dead-letter writes attempted
}

// process is what a worker does with a message.
func (ph *phase) process(j *job) {
	if j.part.isRevoked() {
		ph.finish(j, resultAbandoned)
		return
	}
	if ph.p.set.forwardTopic != "" {
		if !ph.acquireAck(j) {
			ph.finish(j, resultAbandoned)
			return
		}
		j.attempt++
		ph.produce(j, ph.forwardMessage(j), &delivery{job: j})
		return
	}
	ph.runHandler(j)
}

// runHandler calls the handler until it succeeds, the message is dead-lettered, or the
// runtime gives up on it (revocation, end of the grace period).
func (ph *phase) runHandler(j *job) {
	for {
		j.attempt++
		err := ph.callHandler(j)
		if err == nil {
			ph.finish(j, resultOK)
			return
		}
		if j.part.ctx.Err() != nil {
			// The runtime gave up on the message while it ran: its failure is not the
			// message's fault, and the partition's next owner consumes it again.
			ph.finish(j, resultAbandoned)
			return
		}
		final := IsPermanent(err) || j.attempt >= ph.p.set.maxAttempts
		if final && ph.p.set.deadLetterTopic != "" {
			ph.sendDeadLetter(j, err)
			return
		}
		wait := ph.p.set.backoff(j.attempt)
		if final {
			// No dead-letter topic: never drop, keep trying at the longest wait.
			wait = ph.p.set.maxBackoff
			ph.stall(j, err)
		}
		ph.p.metrics.retries.Inc()
		if !ph.sleep(j, wait) {
			ph.finish(j, resultAbandoned)
			return
		}
	}
}

func (ph *phase) callHandler(j *job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return ph.p.handler.Handle(j.part.ctx, j.message())
}

// message is what the handler gets for the current attempt.
func (j *job) message() *Message {
	if j.attempt == 1 {
		fillMessage(&j.firstMsg, j.msg, j.attempt, j.firstHdr[:0])
		return &j.firstMsg
	}
	return toMessage(j.msg, j.attempt)
}

func toMessage(m *sarama.ConsumerMessage, attempt int) *Message {
	out := &Message{}
	fillMessage(out, m, attempt, make([]Header, 0, len(m.Headers)))
	return out
}

// fillMessage sets *out from m; the headers go in hs's array when they fit.
func fillMessage(out *Message, m *sarama.ConsumerMessage, attempt int, hs []Header) {
	if cap(hs) < len(m.Headers) {
		hs = make([]Header, 0, len(m.Headers))
	}
	for _, h := range m.Headers {
		if h != nil {
			hs = append(hs, Header{Key: string(h.Key), Value: h.Value})
		}
	}
	*out = Message{
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		Key: m.Key, Value: m.Value, Headers: hs, Timestamp: m.Timestamp, Attempt: attempt,
	}
}

// sleep waits d; false when the message should be given up instead.
func (ph *phase) sleep(j *job, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ph.workCtx.Done():
		return false
	case <-j.part.revoked:
		return false
	}
}

func jitteredBackoff(attempt int, initial, maxWait time.Duration) time.Duration {
	d := initial
	for i := 1; i < attempt && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	half := d / 2
	return half + rand.N(d-half+1)
}

// acquireAck takes a slot of the producer window, which bounds the messages waiting for
// a broker ack.
func (ph *phase) acquireAck(j *job) bool {
	if j.ackSlot {
		return true
	}
	select {
	case ph.ackSlots <- struct{}{}:
		j.ackSlot = true
		return true
	case <-ph.workCtx.Done():
		return false
	case <-j.part.revoked:
		return false
	}
}

// produce hands a message to the shared producer; its ack or error comes back to
// drainProducer through d.
func (ph *phase) produce(j *job, pm *sarama.ProducerMessage, d *delivery) {
	pm.Metadata = d
	if ph.workCtx.Err() != nil {
		ph.finish(j, resultAbandoned)
		return
	}
	select {
	case ph.producer.Input() <- pm:
	case <-ph.workCtx.Done():
		ph.finish(j, resultAbandoned)
	}
}

func (ph *phase) forwardMessage(j *job) *sarama.ProducerMessage {
	pm := &sarama.ProducerMessage{
		Topic:   ph.p.set.forwardTopic,
		Value:   sarama.ByteEncoder(j.msg.Value),
		Headers: copyHeaders(j.msg.Headers, 0),
	}
	if j.msg.Key != nil {
		pm.Key = sarama.ByteEncoder(j.msg.Key)
	}
	return pm
}

func (ph *phase) sendDeadLetter(j *job, cause error) {
	if !ph.acquireAck(j) {
		ph.finish(j, resultAbandoned)
		return
	}
	ph.produce(j, ph.deadLetterMessage(j, cause), &delivery{job: j, deadLetter: true, cause: cause})
}

func (ph *phase) deadLetterMessage(j *job, cause error) *sarama.ProducerMessage {
	m := j.msg
	hs := copyHeaders(m.Headers, 5)
	hs = append(hs,
		sarama.RecordHeader{Key: []byte(HeaderError), Value: []byte(cause.Error())},
		sarama.RecordHeader{Key: []byte(HeaderSourceTopic), Value: []byte(m.Topic)},
		sarama.RecordHeader{Key: []byte(HeaderSourcePartition), Value: []byte(strconv.Itoa(int(m.Partition)))},
		sarama.RecordHeader{Key: []byte(HeaderSourceOffset), Value: []byte(strconv.FormatInt(m.Offset, 10))},
		sarama.RecordHeader{Key: []byte(HeaderAttempts), Value: []byte(strconv.Itoa(j.attempt))},
	)
	pm := &sarama.ProducerMessage{Topic: ph.p.set.deadLetterTopic, Value: sarama.ByteEncoder(m.Value), Headers: hs}
	if m.Key != nil {
		pm.Key = sarama.ByteEncoder(m.Key)
	}
	return pm
}

func copyHeaders(in []*sarama.RecordHeader, extra int) []sarama.RecordHeader {
	out := make([]sarama.RecordHeader, 0, len(in)+extra)
	for _, h := range in {
		if h != nil {
			out = append(out, sarama.RecordHeader{Key: h.Key, Value: h.Value})
		}
	}
	return out
}

// drainProducer reads the producer's acks and errors until both channels close. It never
// blocks on anything else: a failed message is retried on a goroutine of its own.
func (ph *phase) drainProducer() {
	succ, errs := ph.producer.Successes(), ph.producer.Errors()
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			ph.acked(m.Metadata.(*delivery))
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			d := e.Msg.Metadata.(*delivery)
			if !ph.retries.spawn(func() { ph.produceFailed(d, e.Err) }) {
				ph.finish(d.job, resultAbandoned)
			}
		}
	}
}

func (ph *phase) acked(d *delivery) {
	if d.deadLetter {
		ph.p.metrics.deadLettered.Inc()
		ph.p.log.Warn("message written to the dead-letter topic", "topic", d.job.msg.Topic,
			"partition", d.job.msg.Partition, "offset", d.job.msg.Offset, "attempts", d.job.attempt, "err", d.cause)
		ph.finish(d.job, resultDeadLettered)
		return
	}
	ph.finish(d.job, resultOK)
}

// produceFailed retries a produce that failed, after a backoff; forwarded messages go to
// the dead-letter topic after their last attempt, and dead letters are retried until they
// are written: their offset is never committed before.
func (ph *phase) produceFailed(d *delivery, err error) {
	j := d.job
	if d.deadLetter {
		d.dlqTries++
		ph.p.log.Error("dead-letter write failed; retrying, the offset stays uncommitted",
			"topic", j.msg.Topic, "partition", j.msg.Partition, "offset", j.msg.Offset, "tries", d.dlqTries, "err", err)
		if !ph.sleep(j, ph.p.set.backoff(d.dlqTries)) {
			ph.finish(j, resultAbandoned)
			return
		}
		ph.produce(j, ph.deadLetterMessage(j, d.cause), d)
		return
	}
	err = fmt.Errorf("produce to %s: %w", ph.p.set.forwardTopic, err)
	final := j.attempt >= ph.p.set.maxAttempts
	if final && ph.p.set.deadLetterTopic != "" {
		ph.produce(j, ph.deadLetterMessage(j, err), &delivery{job: j, deadLetter: true, cause: err})
		return
	}
	wait := ph.p.set.backoff(j.attempt)
	if final {
		wait = ph.p.set.maxBackoff
		ph.stall(j, err)
	}
	ph.p.log.Debug("forward failed; retrying", "topic", j.msg.Topic, "partition", j.msg.Partition,
		"offset", j.msg.Offset, "attempt", j.attempt, "err", err)
	ph.p.metrics.retries.Inc()
	if !ph.sleep(j, wait) {
		ph.finish(j, resultAbandoned)
		return
	}
	j.attempt++
	ph.produce(j, ph.forwardMessage(j), d)
}

// stall records a message that used up its attempts with no dead-letter topic to go to.
func (ph *phase) stall(j *job, err error) {
	if !j.stalled {
		j.stalled = true
		ph.p.metrics.stalled.Inc()
	}
	ph.p.log.Warn("message keeps failing and there is no dead-letter topic; retrying, its partition waits",
		"topic", j.msg.Topic, "partition", j.msg.Partition, "offset", j.msg.Offset, "attempt", j.attempt, "err", err)
}

// finish ends a message's life in the runtime, once.
func (ph *phase) finish(j *job, result string) {
	if !j.finished.CompareAndSwap(false, true) {
		return
	}
	if j.ackSlot {
		<-ph.ackSlots
	}
	ph.inFlight.Add(-1)
	m := ph.p.metrics
	m.inFlight.Dec()
	if j.stalled {
		m.stalled.Dec()
	}
	m.processedCounter(result).Inc()
	if result == resultAbandoned {
		j.part.abandon()
		return
	}
	m.latency.Observe(time.Since(j.start).Seconds())
	j.part.complete(j.msg.Offset)
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
