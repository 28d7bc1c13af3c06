package runtime

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// latestSpec is baseSpec reading from the latest offset.
func (tc *testCluster) latestSpec(group string) map[string]any {
	spec := tc.baseSpec(group)
	spec["initialOffset"] = "Latest"
	return spec
}

// committedOffsets is the group's committed offsets of topic, those with a commit; it fails
// g while the group does not exist yet.
func (tc *testCluster) committedOffsets(g Gomega, group, topic string, partitions int32) map[int32]int64 {
	out := map[int32]int64{}
	for p, c := range tc.records(g, group, topic, partitions) {
		out[p] = c.offset
	}
	return out
}

// TestLatestStartCommitted: a Latest pipeline commits, on every partition it claims with no
// commit, the offset it starts at, the end of the partition, though no message ever comes
// (so the operator can tell the partition has no lag and scale the pipeline to zero).
func TestLatestStartCommitted(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 3, "out": 3})
	in := input{topic: "in", n: 30, keys: 3, partitions: 3}
	tc.produce(in, 0, in.n) // before the start: Latest skips them
	end := tc.endOffsets("in")
	g.Expect(end).To(HaveEach(BeNumerically(">", 0)))
	r := start(t, specJSON(t, tc.latestSpec("latest")))
	g.Eventually(func(g Gomega) map[int32]int64 { return tc.committedOffsets(g, "latest", "in", 3) }).
		WithTimeout(30 * time.Second).Should(Equal(end))
	r.stop(t)
	g.Expect(tc.countOutput("out")).To(BeZero(), "messages from before the start were consumed")
}

// TestLatestStartLosesNothing: messages produced right after a Latest pipeline started are
// consumed even when it dies before committing any of them: its successor starts at the
// committed start, not at the end of the partitions (which would skip them).
func TestLatestStartLosesNothing(t *testing.T) {
	g := NewWithT(t)
	const n = 3000
	tc := newTestCluster(t, map[string]int32{"in": 3, "out": 3})
	spec := specJSON(t, tc.latestSpec("latest-crash"))
	a := start(t, spec, WithShutdownTimeout(0))
	// The start is committed; nothing was produced yet.
	g.Eventually(func(g Gomega) map[int32]int64 { return tc.committedOffsets(g, "latest-crash", "in", 3) }).
		WithTimeout(30 * time.Second).Should(Equal(map[int32]int64{0: 0, 1: 0, 2: 0}))

	// From here no commit reaches the broker (a crash: see TestCrashLosesNothing).
	refuse := tc.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.GroupAuthorizationFailed, Count: -1})
	in := input{topic: "in", n: n, keys: 30, partitions: 3}
	tc.produce(in, 0, n)
	g.Eventually(func() int64 { return tc.countOutput("out") }).WithTimeout(time.Minute).Should(BeNumerically(">", 0))
	a.stop(t)
	refuse.Remove()
	g.Expect(tc.committed("latest-crash", "in", 3)).To(Equal(map[int32]int64{0: 0, 1: 0, 2: 0}), "a commit got through")

	b := start(t, spec)
	out := tc.readAll("out", n, time.Minute)
	tc.expectCommittedAtEnd(g, "latest-crash", "in")
	b.stop(t)
	checkAllPresent(t, out, n)
}
