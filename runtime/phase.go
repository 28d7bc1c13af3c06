package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// phase is one stretch of consuming, from joining the group to leaving it at shutdown or
// when idle: its lifecycle (join, grace, idle, leave). Each phase has its own stages: the
// claims (admission and commits), the pool and its workers, and the producer.
type phase struct {
	p        *Pipeline
	group    sarama.ConsumerGroup
	claims   *claims
	pool     *pool
	worker   *worker
	out      *producer // nil when nothing is produced
	workCtx  context.Context
	wentIdle atomic.Bool
	// stopConsuming ends the phase early; the pipeline starts the next one.
	stopConsuming context.CancelFunc
	bridging      bool // joins on the group's eager strategy, on the way to cooperative-sticky
}

// runPhase consumes until ctx ends or the pipeline goes idle, and reports which.
func (p *Pipeline) runPhase(ctx context.Context) (idle bool, err error) {
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx)) // outlives the consumer
	defer cancelWork()
	consumeCtx, stopConsuming := context.WithCancel(ctx)
	defer stopConsuming()
	ph := p.newPhase(ctx, workCtx)
	ph.stopConsuming = stopConsuming
	if err := ph.join(); err != nil {
		return false, err
	}
	group := ph.group

	var wg sync.WaitGroup
	wg.Go(func() { p.logGroupErrors(group.Errors()) })
	if ph.out != nil {
		wg.Go(ph.out.run)
	}
	wg.Go(func() { p.enforceGrace(ctx, workCtx, cancelWork) })
	wg.Go(func() { ph.watchIdle(consumeCtx, stopConsuming) })
	wg.Go(func() { ph.watchBridge(consumeCtx, stopConsuming) })
	ph.pool.start(workCtx, p.set.poolSize, ph.worker.process)

	ph.consume(consumeCtx)

	// The consumer has released its partitions (drained and committed).
	stopConsuming()
	cancelWork()
	ph.leave()
	wg.Wait()
	return ph.wentIdle.Load() && ctx.Err() == nil, nil
}

// join creates the phase's consumer group and, when the pipeline writes to Kafka, its
// producer. The consumer group gets a configuration of its own: its claims size its fetches
// for each session and see every message before sarama delivers it.
func (ph *phase) join() error {
	p := ph.p
	consumer := *p.sarama
	consumer.Consumer.Interceptors = append(slices.Clip(consumer.Consumer.Interceptors), ph.claims)
	consumer.Consumer.Group.Rebalance.GroupStrategies = ph.strategies()
	ph.claims.consumer = &consumer
	group, client, err := newConsumerGroup(p.set.brokers, p.set.group, &consumer)
	if err != nil {
		return fmt.Errorf("create consumer group: %w", err)
	}
	ph.group, ph.claims.client, ph.claims.group = group, client, group
	var window *byteGate // the producer window's bytes, which the decoded fetches draw on too
	if p.set.produces() {
		if err := ph.openProducer(); err != nil {
			return err
		}
		window = ph.out.windowBytes
	}
	ph.claims.decoded = newDecodedFetches(p.set.memory, consumer.MetricRegistry, ph.pool, window)
	return nil
}

// openProducer creates the phase's producer, and in ExactlyOnce begins its transactions; on
// an error it closes what it opened and the group.
func (ph *phase) openProducer() error {
	p := ph.p
	async, err := sarama.NewAsyncProducer(p.set.brokers, p.sarama)
	if err != nil {
		ph.closeGroup()
		return fmt.Errorf("create producer: %w", err)
	}
	s := &p.set
	ph.out = &producer{set: s, async: async, window: newByteGate(int64(s.producerWindow)),
		windowBytes: newByteGate(s.memory.window), log: p.log, metrics: p.metrics, ctx: ph.workCtx}
	ph.worker.out = ph.out
	if s.claimForwards() {
		ph.claims.fast = ph.out
	}
	if s.exactlyOnce {
		if err := ph.beginTransactions(async); err != nil {
			_ = async.Close()
			ph.closeGroup()
			return err
		}
	}
	return nil
}

// newPhase wires the stages of a phase but the Kafka clients (join). runCtx is Run's
// context, workCtx the one of the messages in flight, which outlives consuming until the
// grace period ends.
func (p *Pipeline) newPhase(runCtx, workCtx context.Context) *phase {
	s := &p.set
	ph := &phase{p: p, workCtx: workCtx, pool: newPool(s.ordering, s.buffer, s.poolSize, s.memory.pool),
		bridging: p.bridge.Load()}
	if s.forwardTopic == "" {
		ph.pool.useRuns() // a handler's messages: the workers finish them themselves
	}
	ph.worker = &worker{set: s, handler: p.handler, log: p.log, metrics: p.metrics, ctx: workCtx}
	ph.claims = &claims{set: s, pool: ph.pool, log: p.log, metrics: p.metrics, sessions: &p.sessions,
		runCtx: runCtx, workCtx: workCtx, tel: newTelemetryWriter(replicaName(p.opts.instance), s.commitInterval, ph.pool)}
	if s.claimForwards() {
		ph.claims.clock = &claimClock{}
		ph.claims.tel.claims = ph.claims.clock
	}
	return ph
}

// leave stops the rest of the phase in order once the work's context ended: the workers and
// the producer's retries, then the producer (flushed), then the group.
func (ph *phase) leave() {
	ph.pool.wait()
	if ph.out != nil {
		ph.out.close()
	}
	ph.closeGroup()
}

// closeGroup leaves the consumer group, then closes its client (the group does not own it).
func (ph *phase) closeGroup() {
	if err := ph.group.Close(); err != nil {
		ph.p.log.Warn("leave consumer group", "err", err)
	}
	if err := ph.claims.client.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
		ph.p.log.Warn("close consumer group client", "err", err)
	}
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

// consume calls Consume in a loop until ctx ends: one call per session on the eager
// protocol, one for the member's whole time in the group on the incremental one. A
// CooperativeSticky replica refused by a group of eager replicas ends the phase, and the
// next one bridges (strategy.go).
func (ph *phase) consume(ctx context.Context) {
	p := ph.p
	for {
		err := ph.group.Consume(ctx, p.set.topics, ph.claims)
		switch {
		case errors.Is(err, sarama.ErrClosedConsumerGroup), ctx.Err() != nil:
			return
		case ph.needsBridge(err):
			p.log.Info("the consumer group runs an eager strategy: joining on it until every member lists cooperative-sticky")
			p.bridge.Store(true)
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

// watchIdle stops consuming once the phase was in a session with nothing consumed for
// idle.window (idleClock) and nothing is in flight: no slot of the pool and none of the
// producer window is taken.
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
		quiet := ph.claims.idle.quiet(time.Now())
		if quiet >= window && ph.empty() {
			ph.wentIdle.Store(true)
			ph.p.log.Info("idle: nothing consumed for the idle window", "window", window.String())
			stop()
			return
		}
		t.Reset(max(window-quiet, window/10))
	}
}

// empty reports whether no message is in flight. Every message holds a slot of the pool
// from admission until a worker is done with it, and one of the producer window from then
// until its ack when it is written to Kafka, so the slots are the count.
func (ph *phase) empty() bool {
	return ph.pool.empty() && (ph.out == nil || ph.out.unacked() == 0)
}
