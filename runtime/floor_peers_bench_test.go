package runtime

import (
	"context"
	"sync"
	"testing"

	"github.com/IBM/sarama"
)

// The consume-only benchmark's floor peers: plain sarama consumers that, like kpipe, keep the
// handler off the goroutine that reads the claim, and do nothing else. They track nothing
// (sarama's MarkMessage marks each message; nothing holds a commit behind an unfinished one,
// as kpipe's offset tracking does), keep no lanes, count no bytes and record no metrics: they
// measure what the hand-off alone costs, which no design with it can go below
// (docs/benchmarks.md, "What the hand-off alone costs").

// noopHandle is the floor peers' handler: a call the compiler cannot remove, as kpipe's
// no-op handler is.
//
//go:noinline
func noopHandle(*sarama.ConsumerMessage) {}

// batchHandoffHandler hands each claim's messages to a goroutine of the claim in batches:
// everything sarama has delivered, up to 256, in one channel send. The goroutine runs and
// marks them in order. It is the lightest hand-off that keeps a partition's order.
type batchHandoffHandler struct{ c *counter }

func (batchHandoffHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (batchHandoffHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h batchHandoffHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	batches := make(chan []*sarama.ConsumerMessage, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ms := range batches {
			for _, m := range ms {
				noopHandle(m)
				sess.MarkMessage(m, "")
				h.c.add(1)
			}
		}
	}()
	defer func() { close(batches); <-done }()
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			batches <- deliveredAfter(m, claim.Messages(), 256)
		case <-sess.Context().Done():
			return nil
		}
	}
}

// deliveredAfter returns m and what messages already holds, up to limit in all, without waiting.
func deliveredAfter(m *sarama.ConsumerMessage, messages <-chan *sarama.ConsumerMessage, limit int) []*sarama.ConsumerMessage {
	ms := []*sarama.ConsumerMessage{m}
	for len(ms) < limit {
		select {
		case m, ok := <-messages:
			if !ok {
				return ms
			}
			ms = append(ms, m)
		default:
			return ms
		}
	}
	return ms
}

// eachHandoffHandler hands every message, one channel send each, to a pool of goroutines
// that all claims share, as kpipe's workers are shared; it keeps no order. Cleanup waits
// until the session's messages were run and marked.
type eachHandoffHandler struct {
	c       *counter
	work    chan handoffItem
	running *sync.WaitGroup // the session's messages handed off and not yet marked
}

type handoffItem struct {
	sess sarama.ConsumerGroupSession
	m    *sarama.ConsumerMessage
}

// eachHandoffRun consumes topic with an eachHandoffHandler of workers goroutines until ctx
// ends.
func eachHandoffRun(b *testing.B, addrs []string, topic, group string, c *counter, workers int) func(ctx context.Context) {
	h := eachHandoffHandler{c: c, work: make(chan handoffItem, 256), running: new(sync.WaitGroup)}
	run := saramaGroupRun(b, addrs, topic, group, saramaGroupConfig(), h)
	return func(ctx context.Context) {
		var pool sync.WaitGroup
		for range workers {
			pool.Go(func() {
				for it := range h.work {
					noopHandle(it.m)
					it.sess.MarkMessage(it.m, "")
					c.add(1)
					h.running.Done()
				}
			})
		}
		run(ctx)
		close(h.work)
		pool.Wait()
	}
}

func (eachHandoffHandler) Setup(sarama.ConsumerGroupSession) error { return nil }

func (h eachHandoffHandler) Cleanup(sarama.ConsumerGroupSession) error {
	h.running.Wait()
	return nil
}

func (h eachHandoffHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.running.Add(1)
			h.work <- handoffItem{sess, m}
		case <-sess.Context().Done():
			return nil
		}
	}
}
