package runtime

import (
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// produceInBackground writes the input in chunks while a test runs, so pipelines stop
// and start mid-stream. The returned function waits for the last chunk.
// The first half is written before it returns, so pipelines have a backlog to work on.
func produceInBackground(tc *testCluster, in input, chunk int) (wait func()) {
	tc.produce(in, 0, in.n/2)
	var wg sync.WaitGroup
	wg.Go(func() {
		for from := in.n / 2; from < in.n; from += chunk {
			tc.produce(in, from, min(from+chunk, in.n))
			time.Sleep(20 * time.Millisecond)
		}
	})
	return wg.Wait
}

// countOutput is the number of records on topic now.
func (tc *testCluster) countOutput(topic string) int64 {
	var total int64
	for _, o := range tc.endOffsets(topic) {
		total += o
	}
	return total
}

// TestCrashLosesNothing kills a pipeline mid-stream — no drain, and no final commit (the
// broker refuses its commits from then on, as if the process died) — then starts another
// one: every message reaches the output; the duplicates are counted.
func TestCrashLosesNothing(t *testing.T) {
	g := NewWithT(t)
	const n = 40_000
	tc := newTestCluster(t, map[string]int32{"in": 6, "out": 6})
	in := input{topic: "in", n: n, keys: 600, partitions: 6}
	wait := produceInBackground(tc, in, 1000)

	spec := specJSON(t, tc.baseSpec("crash"))
	a := start(t, spec, WithShutdownTimeout(0))
	g.Eventually(func() int64 { return tc.countOutput("out") }).WithTimeout(time.Minute).Should(BeNumerically(">=", n/8))
	// Let a periodic commit land first, so the restart resumes from mid-stream offsets.
	g.Eventually(func() int64 {
		var sum int64
		for _, o := range tc.committed("crash", "in", 6) {
			sum += max(o, 0)
		}
		return sum
	}).WithTimeout(time.Minute).Should(BeNumerically(">", 0))

	// The crash: no commit reaches the broker any more, and whatever is in flight is dropped.
	// (GROUP_AUTHORIZATION_FAILED is refused before the write; kfake applies a commit it
	// answers REQUEST_TIMED_OUT, as a broker may, so that would not be a crash.)
	refuse := tc.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.GroupAuthorizationFailed, Count: -1})
	a.stop(t)
	refuse.Remove()
	committedAtCrash := tc.committed("crash", "in", 6)
	var resumeFrom int64
	for _, o := range committedAtCrash {
		resumeFrom += max(o, 0)
	}
	g.Expect(resumeFrom).To(BeNumerically(">", 0), "the restart resumes from committed offsets")

	b := start(t, spec)
	wait()
	out := tc.readAll("out", n, 2*time.Minute)
	tc.expectCommittedAtEnd(g, "crash", "in")
	b.stop(t)
	dups := checkAllPresent(t, out, n)
	t.Logf("crash: committed at the crash %v; %d duplicates among %d records", committedAtCrash, dups, len(out))
}

// TestRebalanceLosesNothing has a second pipeline join mid-stream and leave again: every
// message reaches the output; the duplicates are counted.
func TestRebalanceLosesNothing(t *testing.T) {
	g := NewWithT(t)
	const n = 40_000
	tc := newTestCluster(t, map[string]int32{"in": 6, "out": 6})
	in := input{topic: "in", n: n, keys: 600, partitions: 6}
	wait := produceInBackground(tc, in, 500)

	spec := specJSON(t, tc.baseSpec("rebalance"))
	a := start(t, spec)
	g.Eventually(func() int64 { return tc.countOutput("out") }).WithTimeout(time.Minute).Should(BeNumerically(">=", n/10))

	b := start(t, spec)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := tc.c.WaitGroupStable(ctx, "rebalance", 2)
	g.Expect(err).NotTo(HaveOccurred(), "the second pipeline never joined")
	// With cooperative-sticky the second pipeline gets its partitions one rebalance after it
	// joined: the first revokes them from the first pipeline, the next assigns them.
	consumed := func() float64 { return testutil.ToFloat64(b.p.metrics.consumed.WithLabelValues("in")) }
	g.Eventually(consumed).WithTimeout(time.Minute).Should(BeNumerically(">", 0), "the second pipeline got no partition")
	mid := tc.countOutput("out")
	g.Eventually(func() int64 { return tc.countOutput("out") }).WithTimeout(time.Minute).Should(BeNumerically(">=", min(mid+int64(n/10), n)))
	b.stop(t)
	consumedByB := consumed()

	wait()
	out := tc.readAll("out", n, 2*time.Minute)
	tc.expectCommittedAtEnd(g, "rebalance", "in")
	a.stop(t)
	dups := checkAllPresent(t, out, n)
	t.Logf("rebalance: the second pipeline consumed %.0f messages; %d duplicates among %d records", consumedByB, dups, len(out))
}

// TestRevocationAbandonsStuckMessages revokes a partition (a second pipeline joins) while a
// handler hangs: after the drain timeout the handler's context ends, the partition is
// released, and the message is handled again by whoever owns the partition next — not
// dead-lettered, since its failure was the runtime's doing.
func TestRevocationAbandonsStuckMessages(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 1, "dlq": 1})
	tc.produce(input{topic: "in", n: 10, keys: 10, partitions: 1}, 0, 10)
	var (
		mu       sync.Mutex
		calls    = map[int64]int{}
		handled  = map[int64]bool{}
		blocked  = make(chan struct{})
		canceled = make(chan struct{})
	)
	h := HandlerFunc(func(ctx context.Context, m *Message) error {
		mu.Lock()
		calls[m.Offset]++
		first := m.Offset == 3 && calls[m.Offset] == 1
		mu.Unlock()
		if first {
			close(blocked)
			<-ctx.Done() // hangs until the runtime gives up on it
			close(canceled)
			return ctx.Err()
		}
		mu.Lock()
		handled[m.Offset] = true
		mu.Unlock()
		return nil
	})
	spec := tc.handlerSpec("revoke")
	// Range moves the one partition to whichever member sorts first; cooperative-sticky would
	// leave it where it is (TestCooperativeRevocation covers that protocol).
	spec["kafka"].(map[string]any)["rebalanceStrategy"] = "Range"
	spec["retry"] = map[string]any{"maxAttempts": 1} // a failure would be dead-lettered at once
	spec["pool"] = map[string]any{"size": 4, "ordering": "Unordered"}
	a := start(t, specJSON(t, spec), WithHandler(h), WithDrainTimeout(300*time.Millisecond))
	<-blocked
	b := start(t, specJSON(t, spec), WithHandler(h), WithDrainTimeout(300*time.Millisecond))
	g.Eventually(canceled).WithTimeout(time.Minute).Should(BeClosed(), "the stuck handler's context never ended")
	g.Eventually(func() int { mu.Lock(); defer mu.Unlock(); return len(handled) }).WithTimeout(time.Minute).Should(Equal(10))
	tc.expectCommittedAtEnd(g, "revoke", "in")
	b.stop(t)
	a.stop(t)
	mu.Lock()
	defer mu.Unlock()
	g.Expect(calls[3]).To(BeNumerically(">=", 2), "the abandoned message was not handled again")
	g.Expect(tc.countOutput("dlq")).To(BeZero(), "a message given up at revocation was dead-lettered")
}
