package runtime

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/kpipe-io/kpipe/internal/telemetry"
)

// job is one consumed message on its way through the pool, the worker and the producer. It
// is created when its claim admits it and ends, once, with finish.
type job struct {
	msg      *sarama.ConsumerMessage
	part     *partition
	key      laneKey // set by the pool, in Partition and Key ordering
	lane     *lane   // set by the pool, in Partition and Key ordering
	start    time.Time
	size     int64 // bytes counted in the memory budget (messageSize)
	attempt  int   // attempts started so far
	ackSlot  bool  // holds a slot of the producer window (set and released by the producer)
	stalled  bool  // past its attempts with no dead-letter topic (kpipe_messages_stalled)
	finished atomic.Bool

	// out is the Message the handler gets (handler jobs only, made on first use); pm the
	// first write of a forwarded message (forward jobs only, allocated with the job).
	out *handlerOut
	pm  *sarama.ProducerMessage
}

// handlerOut is the Message a handler gets, refilled for every attempt, and room for its
// headers. A handler must not keep it after Handle returns (see Message): the job, with it,
// is reused once finished.
type handlerOut struct {
	msg Message
	hdr [2]Header
}

// forwardJob is a forward job with the ProducerMessage of its first write and room for
// that message's headers: one allocation per batch of messages instead of three per message.
type forwardJob struct {
	job
	pm  sarama.ProducerMessage
	hdr [1]sarama.RecordHeader
}

// newJobs makes the jobs of one partition's messages admitted together (sizes are their
// bytes); forHandler when a handler runs them, not the forward processor.
//
// A job a worker finished is reused (see recycle), with the Message in it: the handler
// must not keep it. The others, those the producer finishes, share one allocation per
// batch, except that a message of copyAbove bytes or more (detached into a buffer of its
// own) gets a job of its own, so it keeps no other message's bytes alive, nor they it.
func newJobs(pt *partition, ms []*sarama.ConsumerMessage, sizes []int64, now time.Time, forHandler bool) []*job {
	js := make([]*job, len(ms))
	var slab []forwardJob
	if !forHandler {
		slab = make([]forwardJob, len(ms))
	}
	for i, m := range ms {
		detach(m, sizes[i])
		var j *job
		switch {
		case forHandler:
			j = jobPool.Get().(*job)
		default:
			f := &slab[i]
			if sizes[i] >= copyAbove {
				f = &forwardJob{}
			}
			f.pm.Headers = f.hdr[:0] // forwardMessage copies the headers there when they fit
			f.job.pm = &f.pm
			j = &f.job
		}
		j.msg, j.part, j.start, j.size = m, pt, now, sizes[i]
		js[i] = j
	}
	return js
}

// jobPool holds the jobs workers finished, for newJobs to reuse.
var jobPool = sync.Pool{New: func() any { return new(job) }}

// recycle makes a job a worker finished itself available to newJobs. Only a worker that
// finished the job calls it, once nothing else refers to the job: it was never handed to
// the producer (which reads a job after finishing it), and the pool and the partition no
// longer hold it. The job is cleared first, so it keeps no message alive.
func (j *job) recycle() {
	out := j.out
	*j = job{}
	if out != nil {
		hs := out.msg.Headers
		clear(hs)
		out.msg = Message{}
		if cap(hs) > len(out.hdr) && cap(hs) <= maxKeptHeaders {
			out.msg.Headers = hs[:0] // a larger array than the job's own, worth keeping
		}
		j.out = out
	}
	jobPool.Put(j)
}

// maxKeptHeaders bounds the headers array a reused job keeps.
const maxKeptHeaders = 16

// message is what the handler gets for the current attempt: the job's own Message,
// refilled, which is why a handler must not keep it.
func (j *job) message() *Message {
	if j.out == nil {
		j.out = new(handlerOut)
	}
	hs := j.out.msg.Headers[:0]
	if cap(hs) == 0 {
		hs = j.out.hdr[:0]
	}
	fillMessage(&j.out.msg, j.msg, j.attempt, hs)
	return &j.out.msg
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
// ctx (the work's) ended or the partition was revoked. The partition's telemetry shows the
// message paused in state st meanwhile (a dead letter's until the message finishes).
func (j *job) wait(ctx context.Context, d time.Duration, st telemetry.State) bool {
	j.part.pause(j.msg.Offset, st)
	if st == telemetry.StateRetrying {
		defer j.part.resume(j.msg.Offset)
	}
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
		j.part.abandon(j.msg.Offset)
		return true
	}
	m.latency.Observe(time.Since(j.start).Seconds())
	j.part.complete(j.msg.Offset)
	return true
}
