package runtime

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handlerSpec is a handler pipeline from "in" to nowhere, dead letters to "dlq".
func (tc *testCluster) handlerSpec(group string) map[string]any {
	spec := tc.baseSpec(group)
	spec["processor"] = map[string]any{"handler": map[string]any{"name": "test"}}
	spec["template"] = map[string]any{"image": "example.com/custom:1"}
	spec["deadLetter"] = map[string]any{"topic": "dlq"}
	return spec
}

// attempts counts the attempts per value a handler saw.
type attempts struct {
	mu sync.Mutex
	m  map[int]int
}

func (a *attempts) add(m *Message) int {
	v, _ := strconv.Atoi(string(m.Value))
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[int]int{}
	}
	a.m[v]++
	return a.m[v]
}

func TestHandlerFailsThenSucceeds(t *testing.T) {
	g := NewWithT(t)
	const n, failures = 300, 2
	tc := newTestCluster(t, map[string]int32{"in": 3, "dlq": 1})
	tc.produce(input{topic: "in", n: n, keys: 30, partitions: 3}, 0, n)
	var seen attempts
	var mu sync.Mutex
	succeeded := map[int]int{} // value -> the attempt that succeeded
	h := HandlerFunc(func(_ context.Context, m *Message) error {
		if seen.add(m) <= failures {
			return errors.New("not yet")
		}
		v, _ := strconv.Atoi(string(m.Value))
		mu.Lock()
		succeeded[v] = m.Attempt
		mu.Unlock()
		return nil
	})
	r := start(t, specJSON(t, tc.handlerSpec("flaky")), WithHandler(h))
	tc.expectCommittedAtEnd(g, "flaky", "in")
	r.stop(t)

	mu.Lock()
	defer mu.Unlock()
	g.Expect(succeeded).To(HaveLen(n))
	for v, a := range succeeded {
		g.Expect(a).To(Equal(failures+1), "attempt that succeeded for %d", v)
	}
	g.Expect(tc.countOutput("dlq")).To(BeZero(), "nothing may be dead-lettered")
	g.Expect(testutil.ToFloat64(r.p.metrics.retries)).To(BeNumerically(">=", n*failures))
}

func TestHandlerAlwaysFailsGoesToDeadLetter(t *testing.T) {
	g := NewWithT(t)
	const n = 200
	tc := newTestCluster(t, map[string]int32{"in": 2, "dlq": 1})
	in := input{topic: "in", n: n, keys: 20, partitions: 2}
	tc.produce(in, 0, n)
	h := HandlerFunc(func(_ context.Context, m *Message) error {
		v, _ := strconv.Atoi(string(m.Value))
		if v%2 == 0 {
			return Permanent(fmt.Errorf("value %d is even", v)) // no retries
		}
		return fmt.Errorf("value %d is odd", v)
	})
	r := start(t, specJSON(t, tc.handlerSpec("dead")), WithHandler(h))
	out := tc.readAll("dlq", n, time.Minute)
	tc.expectCommittedAtEnd(g, "dead", "in")
	r.stop(t)

	checkAllPresent(t, out, n)
	for _, rec := range out {
		wantAttempts, wantErr := "3", fmt.Sprintf("value %d is odd", rec.value)
		if rec.value%2 == 0 {
			wantAttempts, wantErr = "1", fmt.Sprintf("value %d is even", rec.value)
		}
		g.Expect(rec.key).To(Equal(in.key(rec.value)))
		g.Expect(rec.headers).To(HaveKeyWithValue("seq", strconv.Itoa(rec.value)), "original headers are kept")
		g.Expect(rec.headers).To(HaveKeyWithValue(HeaderError, wantErr))
		g.Expect(rec.headers).To(HaveKeyWithValue(HeaderSourceTopic, "in"))
		g.Expect(rec.headers).To(HaveKeyWithValue(HeaderSourcePartition, strconv.Itoa(int(in.partition(rec.value)))))
		g.Expect(rec.headers).To(HaveKey(HeaderSourceOffset))
		g.Expect(rec.headers).To(HaveKeyWithValue(HeaderAttempts, wantAttempts))
	}
	g.Expect(testutil.ToFloat64(r.p.metrics.deadLettered)).To(BeNumerically(">=", n))
}

// TestUnwritableDeadLetterCommitsNothing makes the dead-letter topic refuse writes: no
// offset is committed while it does, and nothing is lost once it accepts them again.
func TestUnwritableDeadLetterCommitsNothing(t *testing.T) {
	g := NewWithT(t)
	const n = 100
	tc := newTestCluster(t, map[string]int32{"in": 2, "dlq": 1})
	tc.produce(input{topic: "in", n: n, keys: 10, partitions: 2}, 0, n)
	refuse := tc.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "dlq", Err: kerr.TopicAuthorizationFailed, Count: -1})
	h := HandlerFunc(func(context.Context, *Message) error { return Permanent(errors.New("poison")) })
	r := start(t, specJSON(t, tc.handlerSpec("dlqdown")), WithHandler(h))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g.Expect(refuse.Wait(ctx, 20)).To(Succeed(), "the dead-letter topic was never written to")
	// Let the ticker run a few commits while the writes fail, then look.
	// At most the start (offset 0) is committed: nothing past a message not dead-lettered.
	g.Consistently(func() map[int32]int64 { return tc.committed("dlqdown", "in", 2) }).
		WithTimeout(time.Second).WithPolling(100*time.Millisecond).
		Should(HaveEach(BeNumerically("<=", 0)), "an offset was committed while its dead letter was not written")

	refuse.Remove()
	out := tc.readAll("dlq", n, time.Minute)
	tc.expectCommittedAtEnd(g, "dlqdown", "in")
	r.stop(t)
	checkAllPresent(t, out, n)
}

// TestBrokerErrorsLoseNothing injects broker errors into produce, fetch and offset commit
// requests while messages are forwarded.
func TestBrokerErrorsLoseNothing(t *testing.T) {
	g := NewWithT(t)
	const n = 20_000
	tc := newTestCluster(t, map[string]int32{"in": 6, "out": 6})
	in := input{topic: "in", n: n, keys: 600, partitions: 6}
	tc.produce(in, 0, n/2)
	faults := []*kfake.FaultHandle{
		tc.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "out", Err: kerr.NotLeaderForPartition, Count: 20}),
		tc.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "out", Err: kerr.TopicAuthorizationFailed, Count: 5}),
		// written, then answered with an error: the retry writes a duplicate
		tc.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "out", Err: kerr.RequestTimedOut, Count: 3}),
		tc.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: "in", Err: kerr.NotLeaderForPartition, Count: 10}),
		tc.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.RequestTimedOut, Count: 10}),
	}
	r := start(t, specJSON(t, tc.baseSpec("faulty")))
	tc.produce(in, n/2, n)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i, f := range faults {
		g.Expect(f.Wait(ctx, 1)).To(Succeed(), "fault %d never hit", i)
	}
	out := tc.readAll("out", n, 2*time.Minute)
	tc.expectCommittedAtEnd(g, "faulty", "in")
	r.stop(t)
	dups := checkAllPresent(t, out, n)
	hits := make([]int, len(faults))
	for i, f := range faults {
		hits[i] = f.Hits()
	}
	t.Logf("broker errors: fault hits %v (produce retriable, produce fatal, produce timed out after the write, fetch, commit); %d duplicates among %d records", hits, dups, len(out))
}

// TestNoDeadLetterKeepsRetrying has no dead-letter topic: a message that fails beyond
// retry.maxAttempts is retried until it succeeds, and its offset waits for it.
func TestNoDeadLetterKeepsRetrying(t *testing.T) {
	g := NewWithT(t)
	const n, failures = 20, 6 // maxAttempts is 3
	tc := newTestCluster(t, map[string]int32{"in": 1})
	tc.produce(input{topic: "in", n: n, keys: 5, partitions: 1}, 0, n)
	var seen attempts
	release := make(chan struct{})
	h := HandlerFunc(func(_ context.Context, m *Message) error {
		if m.Offset == 0 {
			if seen.add(m) <= failures {
				return errors.New("not yet")
			}
			<-release // hold the first message until the test has looked at the commits
		}
		return nil
	})
	spec := tc.handlerSpec("nodlq")
	delete(spec, "deadLetter")
	r := start(t, specJSON(t, spec), WithHandler(h))
	g.Eventually(func() int { seen.mu.Lock(); defer seen.mu.Unlock(); return seen.m[0] }).
		WithTimeout(time.Minute).Should(Equal(failures + 1))
	g.Expect(tc.committed("nodlq", "in", 1)[0]).To(BeNumerically("<=", 0), "committed past a message still failing")
	g.Expect(testutil.ToFloat64(r.p.metrics.stalled)).To(Equal(1.0))
	close(release)
	tc.expectCommittedAtEnd(g, "nodlq", "in")
	g.Expect(testutil.ToFloat64(r.p.metrics.stalled)).To(BeZero())
	r.stop(t)
}
