package runtime

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestCooperativeRevocation: with cooperative-sticky (the default), a second pipeline
// joining takes half of the first one's partitions. A partition moved away drains on its
// own: the first message of each of the first pipeline's partitions hangs, so the moved
// partitions wait the whole drain timeout (3s) before their messages' contexts end. During
// that wait the partitions the first pipeline keeps go on being consumed; on the eager
// protocol every partition would stop until the rebalance completes. Nothing is lost.
func TestCooperativeRevocation(t *testing.T) {
	g := NewWithT(t)
	const n = 3000
	tc := newTestCluster(t, map[string]int32{"in": 4, "dlq": 1})
	in := input{topic: "in", n: n, keys: 40, partitions: 4}
	tc.produce(in, 0, 40)
	var (
		mu       sync.Mutex
		handled  = map[int]int{}
		byA      []time.Time             // when A handled a message of a partition it kept
		canceled = map[int32]time.Time{} // when the hanging message of a moved partition gave up
		moved    = map[int32]bool{}
	)
	hang := func(a bool) Handler {
		seen := map[int32]bool{}
		return HandlerFunc(func(ctx context.Context, m *Message) error {
			v, _ := strconv.Atoi(string(m.Value))
			mu.Lock()
			first := a && !seen[m.Partition]
			seen[m.Partition] = true
			mu.Unlock()
			if first {
				<-ctx.Done() // until the partition is moved away (or A stops)
				mu.Lock()
				canceled[m.Partition] = time.Now()
				mu.Unlock()
				return ctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			handled[v]++
			if a && !moved[m.Partition] {
				byA = append(byA, time.Now())
			}
			return nil
		})
	}
	spec := tc.handlerSpec("coop")
	spec["retry"] = map[string]any{"maxAttempts": 1}
	spec["pool"] = map[string]any{"size": 8, "ordering": "Unordered"}
	a := start(t, specJSON(t, spec), WithHandler(hang(true)), WithDrainTimeout(3*time.Second), WithShutdownTimeout(time.Second))

	// A steady stream while B joins.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for from := 40; from < n; from += 10 {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			tc.produce(in, from, from+10)
		}
	})
	g.Eventually(func() int { mu.Lock(); defer mu.Unlock(); return len(byA) }).WithTimeout(time.Minute).Should(BeNumerically(">", 20))
	b := start(t, specJSON(t, spec), WithHandler(hang(false)))
	g.Eventually(func() int { mu.Lock(); defer mu.Unlock(); return len(canceled) }).WithTimeout(time.Minute).Should(Equal(2),
		"two of A's four partitions move to B, and their hanging messages give up after the drain timeout")

	mu.Lock()
	var first time.Time
	for p, at := range canceled {
		moved[p] = true
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	// A's messages of the partitions it kept, handled while the moved ones drained: the 2s
	// before the first drain ended (it started 3s before).
	during := 0
	for _, at := range byA {
		if at.After(first.Add(-2*time.Second)) && at.Before(first) {
			during++
		}
	}
	mu.Unlock()
	t.Logf("moved partitions %v; A handled %d messages of the partitions it kept while they drained", moved, during)
	g.Expect(during).To(BeNumerically(">", 0), "the partitions A kept stopped while the moved ones drained")

	wg.Wait()
	close(stop)
	a.stop(t) // A's own hanging messages are abandoned and consumed again by B
	g.Eventually(func() int { mu.Lock(); defer mu.Unlock(); return len(handled) }).WithTimeout(time.Minute).Should(Equal(n))
	tc.expectCommittedAtEnd(g, "coop", "in")
	b.stop(t)
}

// TestRevokedClaimWithFullPool: every message the first pipeline takes hangs, so its pool
// (two workers, a buffer of one) is full and each partition's feeder waits for room. A second
// pipeline joins and one of the two partitions moves to it. The moved claim must not wait
// for room that only its own drain would free: its context ends with the new assignment,
// it drains (hung messages given up after the 2s drain timeout) and the second pipeline
// consumes the partition well within the rebalance timeout, after which sarama would end
// the first pipeline's whole session.
func TestRevokedClaimWithFullPool(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 2, "dlq": 1})
	in := input{topic: "in", n: 200, keys: 20, partitions: 2}
	tc.produce(in, 0, in.n)
	var (
		mu       sync.Mutex
		hung     int
		handledB = map[int32]int{}
	)
	hang := HandlerFunc(func(ctx context.Context, _ *Message) error {
		mu.Lock()
		hung++
		mu.Unlock()
		<-ctx.Done()
		return ctx.Err()
	})
	count := HandlerFunc(func(_ context.Context, m *Message) error {
		mu.Lock()
		defer mu.Unlock()
		handledB[m.Partition]++
		return nil
	})
	spec := tc.handlerSpec("fullpool")
	spec["retry"] = map[string]any{"maxAttempts": 1}
	spec["pool"] = map[string]any{"size": 2, "buffer": 1, "ordering": "Unordered"}
	a := start(t, specJSON(t, spec), WithHandler(hang), WithDrainTimeout(2*time.Second), WithShutdownTimeout(time.Second))
	g.Eventually(func() int { mu.Lock(); defer mu.Unlock(); return hung }).WithTimeout(time.Minute).Should(Equal(2))

	joined := time.Now()
	b := start(t, specJSON(t, spec), WithHandler(count))
	// 8s: below the tests' rebalance timeout (10s, fastGroup), past which sarama ends the
	// first pipeline's session and the partition moves anyway.
	g.Eventually(func() int { mu.Lock(); defer mu.Unlock(); return len(handledB) }).WithTimeout(8*time.Second).
		Should(Equal(1), "the moved partition was not consumed by the second pipeline within 8s")
	t.Logf("the second pipeline consumed the moved partition %.1fs after joining", time.Since(joined).Seconds())
	g.Expect(a.p.sessions.Load()).To(Equal(int32(1)), "the first pipeline's session ended")

	a.stop(t) // its hung messages are given up and consumed again by the second
	g.Eventually(func() int { mu.Lock(); defer mu.Unlock(); return handledB[0] + handledB[1] }).WithTimeout(time.Minute).Should(BeNumerically(">=", in.n))
	g.Expect(tc.countOutput("dlq")).To(BeZero())
	b.stop(t)
}
