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
