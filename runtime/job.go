package runtime

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// job is one consumed message on its way through the pool, the worker and the producer. It
// is created when its claim admits it and ends, once, with finish.
type job struct {
	msg      *sarama.ConsumerMessage
	part     *partition
	lane     laneKey // set by the pool, in Partition and Key ordering
	start    time.Time
	size     int64 // bytes counted in the memory budget (messageSize)
	attempt  int   // attempts started so far
	ackSlot  bool  // holds a slot of the producer window (set and released by the producer)
	stalled  bool  // past its attempts with no dead-letter topic (kpipe_messages_stalled)
	finished atomic.Bool

	// The Message of the first attempt and room for its headers, allocated with the job.
	// Retries get a Message of their own, so a handler that kept the first one never sees
	// it change.
	firstMsg Message
	firstHdr [2]Header
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

// wait waits d before the next attempt; false when the message should be given up instead:
// ctx (the work's) ended or the partition was revoked.
func (j *job) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-j.part.revoked:
		return false
	}
}

// stall records a message that used up its attempts with no dead-letter topic to go to.
func (j *job) stall(m *metrics, log *slog.Logger, err error) {
	if !j.stalled {
		j.stalled = true
		m.stalled.Inc()
	}
	log.Warn("message keeps failing and there is no dead-letter topic; retrying, its partition waits",
		"topic", j.msg.Topic, "partition", j.msg.Partition, "offset", j.msg.Offset, "attempt", j.attempt, "err", err)
}

// finish ends the message's life in the runtime: its partition completes its offset (or
// gives up on it) and the result is counted. Only the first call does anything; it returns
// whether this was that call. A job holding a producer window slot is finished by the
// producer, which gives the slot back.
func (j *job) finish(result string, m *metrics) bool {
	if !j.finished.CompareAndSwap(false, true) {
		return false
	}
	if j.stalled {
		m.stalled.Dec()
	}
	m.processedCounter(result).Inc()
	if result == resultAbandoned {
		j.part.abandon()
		return true
	}
	m.latency.Observe(time.Since(j.start).Seconds())
	j.part.complete(j.msg.Offset)
	return true
}
