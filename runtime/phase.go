package runtime

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// phase is one stretch of consuming, from joining the group to leaving it at shutdown or
// when idle. Each phase has its own consumer group, producer and worker pool.
type phase struct {
	p            *Pipeline
	runCtx       context.Context // Run's context: when it ends, the pipeline shuts down
	workCtx      context.Context // outlives the consumer so messages in flight can finish
	pool         *pool
	producer     sarama.AsyncProducer // nil when nothing is produced
	ackSlots     chan struct{}
	retries      goroutines
	inFlight     atomic.Int64
	lastConsumed atomic.Int64 // unix nanoseconds
	wentIdle     atomic.Bool
}

// runPhase consumes until ctx ends or the pipeline goes idle, and reports which.
func (p *Pipeline) runPhase(ctx context.Context) (idle bool, err error) {
	brokers := p.set.brokers
	group, err := sarama.NewConsumerGroup(brokers, p.set.group, p.sarama)
	if err != nil {
		return false, fmt.Errorf("create consumer group: %w", err)
	}
	ph := &phase{
		p:        p,
		runCtx:   ctx,
		pool:     newPool(p.set.ordering, p.set.buffer, p.set.poolSize),
		ackSlots: make(chan struct{}, p.set.producerWindow),
	}
	if p.set.produces() {
		if ph.producer, err = sarama.NewAsyncProducer(brokers, p.sarama); err != nil {
			_ = group.Close()
			return false, fmt.Errorf("create producer: %w", err)
		}
	}
	ph.lastConsumed.Store(time.Now().UnixNano())

	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	ph.workCtx = workCtx
	consumeCtx, stopConsuming := context.WithCancel(ctx)
	defer stopConsuming()

	var wg sync.WaitGroup
	wg.Go(func() { p.logGroupErrors(group.Errors()) })
	if ph.producer != nil {
		wg.Go(ph.drainProducer)
	}
	wg.Go(func() { p.enforceGrace(ctx, workCtx, cancelWork) })
	wg.Go(func() { ph.watchIdle(consumeCtx, stopConsuming) })
	ph.pool.start(workCtx, p.set.poolSize, ph.process)

	p.consume(consumeCtx, group, &groupHandler{ph: ph})

	// The consumer has released its partitions (drained and committed). Stop the rest in
	// order: workers and retries, then flush the producer, then leave the group.
	stopConsuming()
	cancelWork()
	ph.pool.wait()
	ph.retries.close()
	if ph.producer != nil {
		ph.producer.AsyncClose()
	}
	if err := group.Close(); err != nil {
		p.log.Warn("leave consumer group", "err", err)
	}
	wg.Wait()
	return ph.wentIdle.Load() && ctx.Err() == nil, nil
}

// enforceGrace gives up on the messages in flight once the shutdown timeout has passed
// since ctx ended.
func (p *Pipeline) enforceGrace(ctx, workCtx context.Context, giveUp context.CancelFunc) {
	select {
	case <-workCtx.Done():
		return
	case <-ctx.Done():
	}
	t := time.NewTimer(p.set.shutdownTimeout)
	defer t.Stop()
	select {
	case <-workCtx.Done():
	case <-t.C:
		p.log.Warn("shutdown timeout reached: abandoning messages in flight; they will be consumed again",
			"timeout", p.set.shutdownTimeout.String())
		giveUp()
	}
}

// consume calls Consume in a loop, one call per consumer group session, until ctx ends.
func (p *Pipeline) consume(ctx context.Context, group sarama.ConsumerGroup, h sarama.ConsumerGroupHandler) {
	for {
		err := group.Consume(ctx, p.set.topics, h)
		switch {
		case errors.Is(err, sarama.ErrClosedConsumerGroup), ctx.Err() != nil:
			return
		case err != nil:
			p.log.Warn("consumer group session ended with an error; joining again", "err", err)
			sleepCtx(ctx, time.Second)
		}
	}
}

func (p *Pipeline) logGroupErrors(errs <-chan error) {
	for err := range errs {
		p.log.Warn("consumer group", "err", err)
	}
}

// watchIdle stops consuming once nothing was consumed for idle.window and nothing is in flight.
func (ph *phase) watchIdle(ctx context.Context, stop context.CancelFunc) {
	window := ph.p.set.idleWindow
	t := time.NewTimer(window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		quiet := time.Since(time.Unix(0, ph.lastConsumed.Load()))
		if quiet >= window && ph.inFlight.Load() == 0 {
			ph.wentIdle.Store(true)
			ph.p.log.Info("idle: nothing consumed for the idle window", "window", window.String())
			stop()
			return
		}
		t.Reset(max(window-quiet, window/10))
	}
}

// maxAdmit bounds the messages a consumer takes into the pool at once.
const maxAdmit = 64

// admit takes consumed messages of one partition into the pool, in order; each holds one
// of the slots the caller took for them. js is scratch space, returned for reuse.
func (ph *phase) admit(pt *partition, ms []*sarama.ConsumerMessage, js []*job) []*job {
	took := pt.addAll(ms)
	ph.pool.release(len(ms) - len(took))
	if len(took) == 0 {
		return js
	}
	now := time.Now()
	ph.lastConsumed.Store(now.UnixNano())
	n := len(took)
	ph.inFlight.Add(int64(n))
	pt.consumed.Add(float64(n))
	ph.p.metrics.inFlight.Add(float64(n))
	js = js[:0]
	for _, m := range took {
		js = append(js, &job{msg: m, part: pt, start: now})
	}
	ph.pool.submitAll(js)
	clear(js)
	return js
}

// groupHandler is the sarama.ConsumerGroupHandler of a phase.
type groupHandler struct {
	ph *phase

	mu         sync.Mutex
	parts      map[*partition]struct{}
	stopCommit context.CancelFunc
	committer  sync.WaitGroup
}

func (h *groupHandler) Setup(sess sarama.ConsumerGroupSession) error {
	p := h.ph.p
	p.sessions.Add(1)
	p.metrics.session.Set(1)
	p.log.Info("consumer group session started", "generation", sess.GenerationID(), "claims", sess.Claims())
	h.mu.Lock()
	h.parts = map[*partition]struct{}{}
	h.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	h.stopCommit = cancel
	h.committer.Go(func() { h.commitEvery(ctx, sess, p.set.commitInterval) })
	return nil
}

func (h *groupHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	h.stopCommit()
	h.committer.Wait()
	sess.Commit()
	p := h.ph.p
	if p.sessions.Add(-1) == 0 {
		p.metrics.session.Set(0)
	}
	p.log.Info("consumer group session ended", "generation", sess.GenerationID())
	return nil
}

// ConsumeClaim feeds one partition's messages to the pool until the partition is revoked
// or the session ends, then drains the partition and commits what finished.
func (h *groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	ph := h.ph
	pt := newPartition(ph.workCtx, sess, claim.Topic(), claim.Partition(), ph.p.log, ph.p.metrics)
	h.track(pt, true)
	defer h.track(pt, false)

	ctx := sess.Context()
	msgs := claim.Messages()
	var (
		ms []*sarama.ConsumerMessage
		js []*job
	)
loop:
	for {
		var first *sarama.ConsumerMessage
		select {
		case <-ctx.Done():
			break loop
		case m, ok := <-msgs:
			if !ok {
				break loop
			}
			first = m
		}
		// Take slots for the messages already waiting too, and admit them together.
		n := ph.pool.acquireUpTo(ctx, maxAdmit)
		if n == 0 {
			break loop
		}
		ms = append(ms[:0], first)
		open := true
	fill:
		for len(ms) < n {
			select {
			case m, ok := <-msgs:
				if !ok {
					open = false
					break fill
				}
				ms = append(ms, m)
			default:
				break fill
			}
		}
		ph.pool.release(n - len(ms))
		js = ph.admit(pt, ms, js)
		clear(ms)
		if !open {
			break loop
		}
	}
	// A revoked partition waits for its messages at most the drain timeout; at shutdown
	// they get the whole grace period, which ends workCtx.
	bound := ph.p.set.drainTimeout
	if ph.runCtx.Err() != nil {
		bound = ph.p.set.shutdownTimeout
	}
	pt.drain(ph.workCtx, bound)
	pt.close()
	sess.Commit()
	// The partition is not this replica's any more: its offset gauge goes with it.
	ph.p.metrics.committed.DeleteLabelValues(pt.topic, strconv.Itoa(int(pt.id)))
	return nil
}

func (h *groupHandler) track(pt *partition, add bool) {
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
func (h *groupHandler) commitEvery(ctx context.Context, sess sarama.ConsumerGroupSession, every time.Duration) {
	t := time.NewTicker(every)
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
				h.ph.p.metrics.setCommitted(pt.topic, pt.id, off)
			}
		}
	}
}
