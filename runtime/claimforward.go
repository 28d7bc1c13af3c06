package runtime

import "context"

// Forwarding on the claim goroutine. A forward pipeline in AtLeastOnce has no user handler:
// the work of a message is its hand-off to the producer (a slot of the producer window, the
// ProducerMessage, the send to sarama's Input). The claim goroutine does that hand-off
// itself, in the partition's order, right after admitting a batch, and so skips the hop
// through the pool and a worker; the workers do not run for such a pipeline. ExactlyOnce
// (whose writes belong to transactions), handlers and HTTP keep the pool.
//
// The claim waits for the window and for sarama's Input as a worker did, but every wait
// ends with the claim's context, which ends as soon as the partition is revoked or the
// session ends (revoke.go): a stuck producer holds up the partition's next messages, never
// its release, exactly as a full pool already held up admission. A message the claim gives
// up on is abandoned: never committed, consumed again by the partition's next owner.
//
// Accounting is the pool path's: the batch holds its pool slots and bytes from admission
// until the claim handed it on (as a message held them until a worker was done with it),
// each message then holds its window slot and bytes until its ack, and its partition counts
// it in flight meanwhile (the drain at release waits for it; nothing is committed past
// it). Busy share: the workers sit idle, so the claims' time not spent waiting for messages
// counts (telemetry.go, claimClock).

// claimForwards reports whether the claims forward the pipeline's messages themselves.
func (s *settings) claimForwards() bool { return s.forwardTopic != "" && !s.exactlyOnce }

// forwardAll hands js, the admitted messages of one partition, to the producer in order.
// Once ctx ended, the messages not yet handed on are abandoned.
func (h *claims) forwardAll(ctx context.Context, js []*job) {
	b := handing{pool: h.pool}
	for i, j := range js {
		size := j.size // j is the producer's once handed on
		ok := h.fast.forwardFrom(ctx.Done(), j, &b)
		b.n++
		b.bytes += size
		if !ok {
			for _, j := range js[i+1:] {
				b.n++
				b.bytes += j.size
				j.finish(resultAbandoned, h.metrics)
			}
			break
		}
	}
	b.giveBack()
}

// handing is a batch a claim is handing to the producer: the pool slots and bytes of its
// messages handed on (or given up) and not given back yet. They are given back together at
// the end of the batch, and before the claim waits for the producer: a claim waiting for the
// window must not hold the slots other claims need to reach the window's queue, where they
// are served in turn; held, they would starve every other partition while the window is full.
type handing struct {
	pool  *pool
	n     int
	bytes int64
}

func (b *handing) giveBack() {
	b.pool.release(b.n, b.bytes)
	b.n, b.bytes = 0, 0
}

// forwardFrom writes a message to the forward topic, as forward does, but for the claim: its
// waits for the window and sarama's input (after b.giveBack) end when done (the claim's
// context) closes, or the work's context ends; it then abandons the message and returns
// false. The job finishes on its ack.
func (pr *producer) forwardFrom(done <-chan struct{}, j *job, b *handing) bool {
	w := waiter{stop: done, before: b.giveBack}
	if !pr.acquire(j, w) {
		pr.finish(j, resultAbandoned)
		return false
	}
	j.attempt = 1
	pm := pr.forwardMessage(j)
	pm.Metadata = j
	return pr.send(j, pm, w)
}
