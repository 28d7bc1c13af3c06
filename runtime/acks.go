package runtime

import (
	"time"

	"github.com/IBM/sarama"
)

// The acks of first forwards are settled in batches: the goroutine reading the producer's
// successes takes, after the ack it waited for, the acks already waiting behind it (it never
// waits for more), and finishes them together: one lock of each partition, one update of the
// processed counter and one release of the producer window per batch instead of per message.
// Dead letters, retried forwards and ExactlyOnce's writes are settled one by one (acked).

// sarama hands the acks over on an unbuffered channel, one message at a time, from its
// goroutine for the broker, and that goroutine takes no new messages for the broker and sends
// no next request until it handed over every ack of the response. Settling on the goroutine
// that receives them would stall it every other message (the receiver takes the ack it
// waited for and the one sender already blocked, then settles while sarama waits), so a relay
// goroutine does nothing but move the acks into a buffered channel, as a handler's loop that
// drains the successes does, and the settling takes them from there in batches.

// maxRelayedAcks bounds the relay's buffer. Every message kpipe writes holds a slot of the
// producer window until its ack is settled, so a buffer of the window's size never fills;
// a larger window gets this many, and the relay then waits as the settling did.
const maxRelayedAcks = 8192

// relayAcks moves the acks from succ into the returned channel, which it closes once succ
// closed.
func relayAcks(succ <-chan *sarama.ProducerMessage, window int) <-chan *sarama.ProducerMessage {
	out := make(chan *sarama.ProducerMessage, min(window, maxRelayedAcks))
	go func() {
		defer close(out)
		for m := range succ {
			out <- m
		}
	}()
	return out
}

// maxAckBatch bounds the acks settled together, so the window is given back at least this
// often while acks keep arriving.
const maxAckBatch = 256

// ackBatch is the run goroutine's buffer of acknowledged jobs, reused from batch to batch.
type ackBatch struct {
	jobs []*job
}

func newAckBatch() *ackBatch { return &ackBatch{jobs: make([]*job, 0, maxAckBatch)} }

// ackedRun settles m's ack and the acks already waiting on succ, at most maxAckBatch
// first forwards; it returns false when succ closed.
func (pr *producer) ackedRun(m *sarama.ProducerMessage, succ <-chan *sarama.ProducerMessage, b *ackBatch) bool {
	open := true
	for {
		if j, ok := m.Metadata.(*job); ok && pr.tx == nil {
			b.jobs = append(b.jobs, j)
		} else {
			pr.acked(m.Metadata)
		}
		if len(b.jobs) == cap(b.jobs) {
			break
		}
		more := false
		select {
		case m, more = <-succ:
			open = more
		default:
		}
		if !more {
			break
		}
	}
	pr.finishAcked(b.jobs)
	clear(b.jobs) // keeps no finished job alive
	b.jobs = b.jobs[:0]
	return open
}

// finishAcked finishes acknowledged first forwards as finish does one: counted ok, offsets
// completed in their partitions, window slots and bytes given back; then the jobs are reused
// (recycle). js is reordered.
//
// The window's share is summed first, in a loop of plain loads: the jobs were last touched
// by the claims long before, and their cache misses then overlap, where the compare-and-swap
// of each settle would wait for the one before. A first forward's job is the ack
// goroutine's alone from its write to its ack, so reading it before settling is safe.
func (pr *producer) finishAcked(js []*job) {
	var slots, bytes int64
	for _, j := range js {
		if j.ackSlot {
			slots++
			bytes += j.size
		}
	}
	now := time.Now()
	n := 0
	for _, j := range js {
		if !j.settle(pr.metrics) {
			if j.ackSlot { // never for a first forward (see above); kept as finish would
				slots--
				bytes -= j.size
			}
			continue
		}
		js[n] = j
		n++
	}
	if n == 0 {
		return
	}
	completeByPartition(js[:n], now)
	pr.windowBytes.release(bytes)
	pr.window.release(slots)
	for _, j := range js[:n] {
		j.recycle()
	}
}

// completeByPartition completes the jobs' offsets, finished at now, under one lock of each
// partition. The jobs of a partition keep their order; js is reordered.
func completeByPartition(js []*job, now time.Time) {
	for len(js) > 0 {
		pt := js[0].part
		k := 0
		for i, j := range js {
			if j.part == pt {
				js[i], js[k] = js[k], j
				k++
			}
		}
		pt.completeAll(js[:k], now)
		js = js[k:]
	}
}
