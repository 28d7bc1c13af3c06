package runtime

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// maxAdmit bounds the messages a consumer takes into the pool at once.
const maxAdmit = 64

// claims is the sarama.ConsumerGroupHandler of a phase: it admits each claimed partition's
// messages into the pool, commits the finished offsets every commit interval, and drains
// and commits a partition when it is released. It owns the session's partitions and the
// time of the last consumption.
type claims struct {
	set      *settings
	pool     *pool
	log      *slog.Logger
	metrics  *metrics
	sessions *atomic.Int32   // the Pipeline's count of sessions between Setup and Cleanup
	runCtx   context.Context // Run's: once it ended, a released partition gets the grace period
	workCtx  context.Context // the work's: the context of the partitions' messages

	lastConsumed atomic.Int64 // unix nanoseconds

	mu         sync.Mutex
	parts      map[*partition]struct{}
	stopCommit context.CancelFunc
	committer  sync.WaitGroup
}

func (h *claims) Setup(sess sarama.ConsumerGroupSession) error {
	h.sessions.Add(1)
	h.metrics.session.Set(1)
	h.log.Info("consumer group session started", "generation", sess.GenerationID(), "claims", sess.Claims())
	h.mu.Lock()
	h.parts = map[*partition]struct{}{}
	h.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	h.stopCommit = cancel
	h.committer.Go(func() { h.commitEvery(ctx, sess) })
	return nil
}

func (h *claims) Cleanup(sess sarama.ConsumerGroupSession) error {
	h.stopCommit()
	h.committer.Wait()
	sess.Commit()
	if h.sessions.Add(-1) == 0 {
		h.metrics.session.Set(0)
	}
	h.log.Info("consumer group session ended", "generation", sess.GenerationID())
	return nil
}

// ConsumeClaim feeds one partition's messages to the pool until the partition is revoked
// or the session ends, then drains the partition and commits what finished.
func (h *claims) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	pt := newPartition(h.workCtx, sess, claim.Topic(), claim.Partition(), h.log, h.metrics)
	h.track(pt, true)
	defer h.track(pt, false)
	h.feed(sess.Context(), pt, claim.Messages())
	h.release(sess, pt)
	return nil
}

// feed admits the partition's messages into the pool, a batch at a time, until ctx ends or
// msgs closes.
func (h *claims) feed(ctx context.Context, pt *partition, msgs <-chan *sarama.ConsumerMessage) {
	var (
		ms []*sarama.ConsumerMessage
		js []*job
	)
	for {
		var first *sarama.ConsumerMessage
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			first = m
		}
		// Take slots for the messages already waiting too, and admit them together.
		n := h.pool.acquireUpTo(ctx, maxAdmit)
		if n == 0 {
			return
		}
		var open bool
		ms, open = takeWaiting(msgs, append(ms[:0], first), n)
		h.pool.release(n - len(ms))
		js = h.admit(pt, ms, js)
		clear(ms)
		if !open {
			return
		}
	}
}

// takeWaiting appends the messages waiting in msgs to ms, up to n in all, without blocking;
// open is false when msgs closed.
func takeWaiting(msgs <-chan *sarama.ConsumerMessage, ms []*sarama.ConsumerMessage, n int) (_ []*sarama.ConsumerMessage, open bool) {
	for len(ms) < n {
		select {
		case m, ok := <-msgs:
			if !ok {
				return ms, false
			}
			ms = append(ms, m)
		default:
			return ms, true
		}
	}
	return ms, true
}

// admit takes consumed messages of one partition into the pool, in order; each holds one
// of the slots the caller took for them. js is scratch space, returned for reuse.
func (h *claims) admit(pt *partition, ms []*sarama.ConsumerMessage, js []*job) []*job {
	took := pt.addAll(ms)
	h.pool.release(len(ms) - len(took))
	if len(took) == 0 {
		return js
	}
	now := time.Now()
	h.lastConsumed.Store(now.UnixNano())
	js = js[:0]
	for _, m := range took {
		js = append(js, &job{msg: m, part: pt, start: now})
	}
	h.pool.submitAll(js)
	clear(js)
	return js
}

// quiet is how long nothing was consumed.
func (h *claims) quiet() time.Duration {
	return time.Since(time.Unix(0, h.lastConsumed.Load()))
}

// release drains a partition that is no longer consumed and commits what finished. A
// revoked partition waits for its messages at most the drain timeout; at shutdown they get
// the whole grace period, which ends workCtx.
func (h *claims) release(sess sarama.ConsumerGroupSession, pt *partition) {
	bound := h.set.drainTimeout
	if h.runCtx.Err() != nil {
		bound = h.set.shutdownTimeout
	}
	pt.drain(h.workCtx, bound)
	pt.close()
	sess.Commit()
	// The partition is not this replica's any more: its offset gauge goes with it.
	h.metrics.committed.DeleteLabelValues(pt.topic, strconv.Itoa(int(pt.id)))
}

func (h *claims) track(pt *partition, add bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if add {
		h.parts[pt] = struct{}{}
	} else {
		delete(h.parts, pt)
	}
}

// commitEvery commits the marked offsets of the session on a ticker: batched commits, not
// one per message.
func (h *claims) commitEvery(ctx context.Context, sess sarama.ConsumerGroupSession) {
	t := time.NewTicker(h.set.commitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		marked := make(map[*partition]int64, len(h.parts))
		for pt := range h.parts {
			marked[pt] = pt.markForCommit()
		}
		h.mu.Unlock()
		sess.Commit()
		for pt, off := range marked {
			if off >= 0 {
				h.metrics.setCommitted(pt.topic, pt.id, off)
			}
		}
	}
}
