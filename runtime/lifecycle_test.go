package runtime

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestIdlePenalty walks the idle state machine with a 200ms window and a 500ms penalty:
// consuming, idle (consumer group left, still ready), consuming again, and messages
// written during the penalty are handled after it.
func TestIdlePenalty(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 2})
	in := input{topic: "in", n: 100, keys: 10, partitions: 2}
	tc.produce(in, 0, 50)

	var (
		mu            sync.Mutex
		handled       = map[int]bool{}
		handledInIdle int
	)
	var p *Pipeline
	h := HandlerFunc(func(_ context.Context, m *Message) error {
		v, _ := strconv.Atoi(string(m.Value))
		mu.Lock()
		defer mu.Unlock()
		handled[v] = true
		if p.idle.Load() {
			handledInIdle++
		}
		return nil
	})
	spec := tc.baseSpec("idle")
	spec["processor"] = map[string]any{"handler": map[string]any{"name": "test"}}
	spec["template"] = map[string]any{"image": "example.com/custom:1"}
	spec["idle"] = map[string]any{"window": "200ms", "penalty": "500ms"}
	r := start(t, specJSON(t, spec), WithHandler(h))
	p = r.p
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(handled) }
	g.Eventually(count).WithTimeout(time.Minute).Should(Equal(50))

	// Idle: the consumer group is left, and the pipeline still reports ready.
	g.Eventually(func(g Gomega) {
		g.Expect(p.idle.Load()).To(BeTrue())
		g.Expect(p.sessions.Load()).To(BeZero())
		g.Expect(groupMembers(tc, "idle")).To(BeZero())
		g.Expect(p.Ready()).To(BeTrue())
		g.Expect(testutil.ToFloat64(p.metrics.idle)).To(Equal(1.0))
	}).WithTimeout(time.Minute).WithPolling(10 * time.Millisecond).Should(Succeed())

	// Messages that arrive now are handled once the penalty is over.
	tc.produce(in, 50, 100)
	g.Eventually(count).WithTimeout(time.Minute).Should(Equal(100))
	mu.Lock()
	g.Expect(handledInIdle).To(BeZero(), "messages handled during the idle penalty")
	mu.Unlock()
	g.Expect(testutil.ToFloat64(p.metrics.idlePeriods)).To(BeNumerically(">=", 1))
	tc.expectCommittedAtEnd(g, "idle", "in")
	r.stop(t)
}

// TestGracefulShutdown cancels a pipeline while slow messages are in flight: they finish,
// the offsets of finished messages are committed exactly to the contiguous end, the group
// is left, and Run returns nil.
func TestGracefulShutdown(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 2})
	in := input{topic: "in", n: 200, keys: 20, partitions: 2}
	tc.produce(in, 0, in.n)

	var (
		mu       sync.Mutex
		started  int
		finished = map[int32]map[int64]bool{0: {}, 1: {}}
	)
	h := HandlerFunc(func(_ context.Context, m *Message) error {
		mu.Lock()
		started++
		mu.Unlock()
		time.Sleep(100 * time.Millisecond) // ignores ctx: the runtime must wait for it
		mu.Lock()
		finished[m.Partition][m.Offset] = true
		mu.Unlock()
		return nil
	})
	spec := tc.baseSpec("graceful")
	spec["processor"] = map[string]any{"handler": map[string]any{"name": "test"}}
	spec["template"] = map[string]any{"image": "example.com/custom:1"}
	spec["pool"] = map[string]any{"size": 4, "buffer": 4, "ordering": "Unordered"}
	r := start(t, specJSON(t, spec), WithHandler(h))
	g.Eventually(func() int { mu.Lock(); defer mu.Unlock(); return started }).
		WithTimeout(time.Minute).Should(BeNumerically(">=", 10))
	r.stop(t)

	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, f := range finished {
		total += len(f)
	}
	g.Expect(total).To(Equal(started), "messages in flight at shutdown were cut off")
	for p, c := range tc.committed("graceful", "in", 2) {
		for o := range c {
			g.Expect(finished[p]).To(HaveKey(o), "partition %d committed to %d past unfinished offset %d", p, c, o)
		}
		next := max(c, 0)
		g.Expect(finished[p]).NotTo(HaveKey(next), "partition %d: offset %d finished but not committed", p, next)
	}
	g.Expect(groupMembers(tc, "graceful")).To(BeZero(), "the group was not left")
}

// groupMembers is the number of members of group in the cluster.
func groupMembers(tc *testCluster, group string) int {
	if gi := tc.c.GroupInfo(group); gi != nil {
		return len(gi.Members)
	}
	return 0
}

// TestShutdownTimeoutAbandons gives up on a handler that never returns by itself once the
// shutdown timeout passes: Run returns, and the message is neither committed nor
// dead-lettered (its handler's error is the runtime's doing).
func TestShutdownTimeoutAbandons(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 1, "dlq": 1})
	tc.produce(input{topic: "in", n: 5, keys: 5, partitions: 1}, 0, 5)
	blocked := make(chan struct{})
	var once sync.Once
	h := HandlerFunc(func(ctx context.Context, m *Message) error {
		if m.Offset == 2 {
			once.Do(func() { close(blocked) })
			<-ctx.Done() // hangs until the runtime gives up
			return ctx.Err()
		}
		return nil
	})
	spec := tc.handlerSpec("stuck")
	spec["retry"] = map[string]any{"maxAttempts": 1} // a failure would be dead-lettered at once
	r := start(t, specJSON(t, spec), WithHandler(h), WithShutdownTimeout(300*time.Millisecond))
	<-blocked
	r.stop(t)
	g.Expect(tc.committed("stuck", "in", 1)[0]).To(BeNumerically("<=", 2), "an offset past the stuck message was committed")
	g.Expect(tc.countOutput("dlq")).To(BeZero(), "a message given up at shutdown was dead-lettered")
}
