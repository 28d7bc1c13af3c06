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
	// What settling an ack reads (acks.go) comes first, in one cache line: the ack goroutine
	// touches a job first long after the claim filled it, and each line it must fetch costs.
	part     *partition
	offset   int64 // msg.Offset, kept here so that an ack need not read msg
	size     int64 // bytes counted in the memory budget (messageSize)
	start    time.Time
	finished atomic.Bool
	ackSlot  bool // holds a slot of the producer window (set and released by the producer)
	stalled  bool // past its attempts with no dead-letter topic (kpipe_messages_stalled)

	msg     *sarama.ConsumerMessage
	key     laneKey // set by the pool, in Partition and Key ordering
	lane    *lane   // set by the pool, in Partition and Key ordering
	attempt int     // attempts started so far
	spilled bool    // in the lanes, counted in its partition's run's inLanes (runs.go)

	// out is the Message the handler gets (handler jobs); pm the message of a forward's first
	// write (forward jobs). Both are made on first use and kept when the job is reused.
	out *handlerOut
	pm  *sarama.ProducerMessage
	// The forwarded key and value, as the encoders of its writes (forwardMessage).
	fwdKey, fwdValue bytesEncoder
}

// spilledRun is the run of j's partition when j is counted in its inLanes, else nil.
func (j *job) spilledRun() *partRun {
	if !j.spilled {
		return nil
	}
	return j.part.run
}

// handlerOut is the Message a handler gets, refilled for every attempt, and room for its
// headers. A handler must not keep it after Handle returns (see Message): the job, with it,
// is reused once finished.
type handlerOut struct {
	msg Message
	hdr [2]Header
	// keys are the first header keys of an earlier message: the same keys come back message
	// after message, and a key equal to its predecessor is not allocated again.
	keys [2]string
}

// newJobs makes the jobs of one partition's messages admitted together (sizes are their
// bytes). Jobs are reused (see recycle): a handler's, with the Message in it, once a worker
// finished it, so the handler must not keep it; a forward's, with its ProducerMessage, once
// its first write was acknowledged (acks.go).
func newJobs(pt *partition, ms []*sarama.ConsumerMessage, sizes []int64, now time.Time) []*job {
	detachAll(ms, sizes)
	return admittedJobs(pt, ms, sizes, now)
}

// detachAll detaches admitted messages (sizes are their bytes) from their fetch response.
func detachAll(ms []*sarama.ConsumerMessage, sizes []int64) {
	for i, m := range ms {
		detach(m, sizes[i])
	}
}

// admittedJobs makes the jobs of messages detached already (newJobs).
func admittedJobs(pt *partition, ms []*sarama.ConsumerMessage, sizes []int64, now time.Time) []*job {
	js := make([]*job, len(ms))
	for i, m := range ms {
		j := jobPool.Get().(*job)
		j.msg, j.part, j.start, j.size, j.offset = m, pt, now, sizes[i], m.Offset
		js[i] = j
	}
	return js
}

// jobPool holds the jobs finished for good, for newJobs to reuse.
var jobPool = sync.Pool{New: func() any { return new(job) }}

// recycle makes a finished job available to newJobs, once nothing else refers to it: a
// handler job finished on its worker, or a forward job whose first write was acknowledged,
// once its ack was settled (the pool and the partition no longer hold it, nor sarama its
// ProducerMessage). Jobs finished otherwise (dead letters, retried or abandoned forwards)
// are left to the garbage collector: the producer may read them after finishing them. The
// job is cleared first, so it keeps no message alive; the arrays of its headers are kept.
func (j *job) recycle() {
	out, pm := j.out, j.pm
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
	if pm != nil {
		hs := pm.Headers
		clear(hs)
		*pm = sarama.ProducerMessage{}
		if cap(hs) <= maxKeptHeaders {
			pm.Headers = hs[:0]
		}
		j.pm = pm
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
	fillMessage(&j.out.msg, j.msg, j.attempt, hs, &j.out.keys)
	return &j.out.msg
}

// fillMessage sets *out from m; the headers go in hs's array when they fit, and their keys
// are taken from keys when equal (else kept there for the next message).
func fillMessage(out *Message, m *sarama.ConsumerMessage, attempt int, hs []Header, keys *[2]string) {
	if cap(hs) < len(m.Headers) {
		hs = make([]Header, 0, len(m.Headers))
	}
	for _, h := range m.Headers {
		if h != nil {
			hs = append(hs, Header{Key: headerKey(h.Key, keys, len(hs)), Value: h.Value})
		}
	}
	*out = Message{
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		Key: m.Key, Value: m.Value, Headers: hs, Timestamp: m.Timestamp, Attempt: attempt,
	}
}

// headerKey is the i-th header's key as a string: keys[i] when it is equal (comparing
// allocates nothing), else a new string, kept in keys[i].
func headerKey(b []byte, keys *[2]string, i int) string {
	if i >= len(keys) {
		return string(b)
	}
	if keys[i] != string(b) {
		keys[i] = string(b)
	}
	return keys[i]
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
// gives up on it) and counts the result (finished.go). Only the first call does anything;
// it returns whether this was that call. A job holding a producer window slot is finished by the
// producer, which gives the slot back.
func (j *job) finish(result string, m *metrics) bool {
	if !j.settle(m) {
		return false
	}
	if result == resultAbandoned {
		j.part.abandon(j.offset)
		return true
	}
	j.part.complete(j.offset, resultIndex(result), time.Since(j.start))
	return true
}

// settle is the part of finishing that every way of finishing shares (finish, and acks.go's
// batches): only the first call returns true; it takes the job out of the stalled count.
func (j *job) settle(m *metrics) bool {
	if !j.finished.CompareAndSwap(false, true) {
		return false
	}
	if j.stalled {
		m.stalled.Dec()
	}
	return true
}
