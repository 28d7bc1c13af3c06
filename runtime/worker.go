package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/kpipe-io/kpipe/internal/telemetry"
)

// worker is what the pool's workers do with a message: forward it (through the producer; in
// ExactlyOnce only, AtLeastOnce forwards on the claims: claimforward.go) or call the handler,
// retrying with backoff, and dead-letter it after its last attempt. It holds no state of its
// own besides what it was built with; the pool runs it on settings.poolSize goroutines.
type worker struct {
	set     *settings
	handler Handler // nil when forwarding
	out     *producer
	log     *slog.Logger
	metrics *metrics
	ctx     context.Context // the work's: ends at the end of the grace period
}

// process is what a worker does with a message.
//
// A job finished here, on the worker, is recycled: nothing else holds it any more. One
// handed to the producer (forwarded, dead-lettered) is finished by the producer, which
// recycles it only after a first write's ack (acks.go).
//
// c holds what the worker's handler finished and the worker has not recorded yet
// (completions.go); forwarding never adds to it.
func (w *worker) process(j *job, c *completions) {
	switch {
	case j.part.isRevoked():
		j.finish(resultAbandoned, w.metrics)
	case w.set.forwardTopic != "":
		w.out.forward(j)
		return
	case !w.runHandler(j, c):
		return
	}
	j.recycle()
}

// runHandler calls the handler until it succeeds, the message is dead-lettered, or the
// runtime gives up on it (revocation, end of the grace period). It reports whether it
// finished the job itself, false when it handed it to the producer. A message that succeeds
// is held in c; c is recorded before a failed attempt waits or is dead-lettered.
func (w *worker) runHandler(j *job, c *completions) bool {
	for {
		j.attempt++
		err := w.call(j)
		if err == nil {
			if j.settle(w.metrics) {
				c.add(j)
			}
			return true
		}
		c.record()
		if j.part.ctx.Err() != nil {
			// The runtime gave up on the message while it ran: its failure is not the
			// message's fault, and the partition's next owner consumes it again.
			j.finish(resultAbandoned, w.metrics)
			return true
		}
		final := IsPermanent(err) || j.attempt >= w.set.maxAttempts
		if final && w.set.deadLetterTopic != "" {
			w.out.deadLetter(j, err)
			return false
		}
		wait := w.set.backoff(j.attempt)
		if final {
			// No dead-letter topic: never drop, keep trying at the longest wait.
			wait = w.set.maxBackoff
			j.stall(w.metrics, w.log, err)
		}
		w.metrics.retries.Inc()
		if !j.wait(w.ctx, wait, telemetry.StateRetrying) {
			j.finish(resultAbandoned, w.metrics)
			return true
		}
	}
}

func (w *worker) call(j *job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return w.handler.Handle(j.part.ctx, j.message())
}

// jitteredBackoff is initial doubled per failed attempt, capped at maxWait, with equal
// jitter (between half and all of it).
func jitteredBackoff(attempt int, initial, maxWait time.Duration) time.Duration {
	d := initial
	for i := 1; i < attempt && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	half := d / 2
	return half + rand.N(d-half+1)
}
