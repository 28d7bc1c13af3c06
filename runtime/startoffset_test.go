package runtime

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
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

// TestLatestStartCommittedOnAddedPartitions: partitions added to the topic of a running
// Latest pipeline reach it by an incremental rebalance of cooperative-sticky (the default),
// not through Setup. Their start, the end of each, is committed though no message ever comes
// to them, and messages produced afterwards are consumed: the claims start at the commit.
func TestLatestStartCommittedOnAddedPartitions(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 2, "out": 2})
	r := tc.startAndAddPartitions(g, "latest-added")
	end := tc.endOffsets("in")
	g.Expect(end).To(Equal(map[int32]int64{0: 50, 1: 50, 2: 0, 3: 0}))
	g.Eventually(func(g Gomega) map[int32]int64 { return tc.committedOffsets(g, "latest-added", "in", 4) }).
		WithTimeout(30*time.Second).Should(Equal(end), "the added partitions' start is committed without a message")
	tc.consumeAfterAddition(g, r, "latest-added")
}

// TestLatestStartAddedRefused: when the coordinator refuses the commit of the added
// partitions' start (here as if a newer generation had completed meanwhile), the rebalance
// goes on: the added partitions are consumed from where sarama starts them, and committed
// with their first messages, as without the commit.
func TestLatestStartAddedRefused(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 2, "out": 2})
	refuse := tc.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Topic: "in", Partitions: []int32{2, 3},
		Err: kerr.IllegalGeneration, Count: -1})
	r := tc.startAndAddPartitions(g, "latest-refused")
	g.Eventually(refuse.Hits).WithTimeout(30*time.Second).Should(BeNumerically(">=", 1), "no commit of the added partitions' start")
	refuse.Remove()
	g.Consistently(func(g Gomega) map[int32]int64 { return tc.committedOffsets(g, "latest-refused", "in", 4) }).
		WithTimeout(time.Second).Should(Equal(map[int32]int64{0: 50, 1: 50}))
	tc.consumeAfterAddition(g, r, "latest-refused")
}

// startAndAddPartitions starts a Latest pipeline on "in" (2 partitions), has it consume 100
// messages, then adds 2 partitions to "in". sarama's group leader looks for a changed
// partition count at each metadata refresh, made frequent here.
func (tc *testCluster) startAndAddPartitions(g Gomega, group string) *running {
	r := start(tc.t, specJSON(tc.t, tc.latestSpec(group)), WithSaramaConfig(func(sc *sarama.Config) {
		fastGroup(sc)
		sc.Metadata.RefreshFrequency = 200 * time.Millisecond
	}))
	g.Eventually(func(g Gomega) map[int32]int64 { return tc.committedOffsets(g, group, "in", 4) }).
		WithTimeout(30 * time.Second).Should(Equal(map[int32]int64{0: 0, 1: 0}))
	tc.produce(input{topic: "in", n: addedBefore, keys: 40, partitions: 2}, 0, addedBefore)
	tc.expectCommittedAtEnd(g, group, "in")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	created, err := tc.adm.CreatePartitions(ctx, 2, "in")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(created.Error()).NotTo(HaveOccurred())
	return r
}

const addedBefore, addedTotal = 100, 500

// consumeAfterAddition writes to the 4 partitions of "in" and expects every message consumed,
// and committed, by r.
func (tc *testCluster) consumeAfterAddition(g Gomega, r *running, group string) {
	g.Eventually(func() int32 { // the test's producer learns of the added partitions
		tc.cl.ForceMetadataRefresh()
		leader, _, _ := tc.cl.PartitionLeader("in", 3)
		return leader
	}).WithTimeout(10 * time.Second).Should(BeNumerically(">=", 0))
	tc.produce(input{topic: "in", n: addedTotal, keys: 40, partitions: 4}, addedBefore, addedTotal)
	out := tc.readAll("out", addedTotal, time.Minute)
	tc.expectCommittedAtEnd(g, group, "in")
	r.stop(tc.t)
	checkAllPresent(tc.t, out, addedTotal)
}

// TestLatestStartCommittedOnMovedPartitions: a replica that could not tell which partitions
// lack a commit (its look-up is refused) consumes them without committing their start. When a
// second replica joins, the partition that moves to it, by the incremental rebalance of
// cooperative-sticky, gets its start committed by the second replica.
func TestLatestStartCommittedOnMovedPartitions(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 2, "out": 2})
	// The runtime looks up every claimed partition in one OffsetFetch; sarama one at a time.
	refuse := tc.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetFetch}, Err: kerr.CoordinatorLoadInProgress,
		When: func(r kmsg.Request) bool { return offsetFetchPartitions(r.(*kmsg.OffsetFetchRequest)) > 1 }})
	spec := specJSON(t, tc.latestSpec("latest-moved"))
	start(t, spec)
	g.Eventually(refuse.Hits).WithTimeout(30*time.Second).Should(Equal(1), "the first replica's look-up")
	g.Consistently(func(g Gomega) map[int32]int64 { return tc.committedOffsets(g, "latest-moved", "in", 2) }).
		WithTimeout(time.Second).Should(BeEmpty())

	start(t, spec)
	g.Eventually(func(g Gomega) map[int32]int64 { return tc.committedOffsets(g, "latest-moved", "in", 2) }).
		WithTimeout(30*time.Second).Should(Or(Equal(map[int32]int64{0: 0}), Equal(map[int32]int64{1: 0})),
		"the partition moved to the second replica has its start committed")
}

// offsetFetchPartitions is the number of partitions r asks for (kfake fills both the topics
// of versions before 8 and the groups of later ones).
func offsetFetchPartitions(r *kmsg.OffsetFetchRequest) int {
	n := 0
	if r.Version < 8 {
		for _, t := range r.Topics {
			n += len(t.Partitions)
		}
		return n
	}
	for _, grp := range r.Groups {
		for _, t := range grp.Topics {
			n += len(t.Partitions)
		}
	}
	return n
}

// TestLatestStartAddedSlow: when resolving the added partitions' start takes longer than its
// share of the session timeout (a ListOffsets answered after 5s), the rebalance goes on
// without it, nothing is committed late, and the added partitions are consumed as without.
func TestLatestStartAddedSlow(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 2, "out": 2})
	var slowed atomic.Int32
	woke := make(chan struct{})
	tc.c.ControlKey(int16(kmsg.ListOffsets), func(r kmsg.Request) (kmsg.Response, error, bool) {
		tc.c.KeepControl()
		for _, topic := range r.(*kmsg.ListOffsetsRequest).Topics {
			for _, p := range topic.Partitions {
				if topic.Topic == "in" && p.Partition >= 2 && slowed.Add(1) == 1 {
					tc.c.SleepControl(func() { time.Sleep(5 * time.Second) })
					close(woke)
				}
			}
		}
		return nil, nil, false
	})
	r := tc.startAndAddPartitions(g, "latest-slow")
	g.Eventually(woke).WithTimeout(30 * time.Second).Should(BeClosed())
	g.Consistently(func(g Gomega) map[int32]int64 { return tc.committedOffsets(g, "latest-slow", "in", 4) }).
		WithTimeout(time.Second).Should(Equal(map[int32]int64{0: 50, 1: 50}), "a start committed late")
	tc.consumeAfterAddition(g, r, "latest-slow")
}
