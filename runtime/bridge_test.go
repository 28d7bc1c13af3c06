package runtime

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	. "github.com/onsi/gomega"
)

// oldReplica is a member as kpipe ran before spec.kafka.rebalanceStrategy: sarama's
// defaults, the eager range strategy only. It records the values it consumed.
type oldReplica struct {
	record func(v int)
}

func (oldReplica) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (oldReplica) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (o oldReplica) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		v, _ := strconv.Atoi(string(m.Value))
		o.record(v)
		sess.MarkMessage(m, "")
	}
	return nil
}

// TestBridgeFromEagerGroup is the rollout of this version over a group of replicas on the
// eager range strategy: a new replica (CooperativeSticky, the default) is refused by the
// group at first (no strategy in common), joins it on range (bridging), and once the last
// old replica left, joins again on the incremental protocol. Nothing is lost on the way.
func TestBridgeFromEagerGroup(t *testing.T) {
	g := NewWithT(t)
	defer func(d time.Duration) { bridgeCheckEvery = d }(bridgeCheckEvery)
	bridgeCheckEvery = 200 * time.Millisecond
	const n = 4000
	tc := newTestCluster(t, map[string]int32{"in": 4, "dlq": 1})
	in := input{topic: "in", n: n, keys: 40, partitions: 4}
	tc.produce(in, 0, n/2)
	var (
		mu      sync.Mutex
		handled = map[int]bool{}
	)
	record := func(v int) { mu.Lock(); defer mu.Unlock(); handled[v] = true }
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(handled) }

	old := sarama.NewConfig()
	old.Version = sarama.V2_8_0_0
	old.Consumer.Offsets.Initial = sarama.OffsetOldest
	fastGroup(old)
	oldGroup, err := sarama.NewConsumerGroup(tc.addrs, "bridge", old)
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			_ = oldGroup.Consume(ctx, []string{"in"}, oldReplica{record: record})
		}
	})
	g.Eventually(count).WithTimeout(time.Minute).Should(BeNumerically(">", 0))

	spec := tc.handlerSpec("bridge")
	spec["initialOffset"] = "Earliest"
	h := HandlerFunc(func(_ context.Context, m *Message) error {
		v, _ := strconv.Atoi(string(m.Value))
		record(v)
		return nil
	})
	r := start(t, specJSON(t, spec), WithHandler(h))
	g.Eventually(r.p.bridge.Load).WithTimeout(time.Minute).Should(BeTrue(), "the new replica never bridged")
	g.Eventually(r.p.sessions.Load).WithTimeout(time.Minute).Should(BeNumerically(">", 0), "the bridging replica never joined")
	g.Expect(groupProtocol(t, tc, "bridge")).To(Equal("range"))

	// The old replica leaves: the group moves to cooperative-sticky, and the new replica
	// joins again on the incremental protocol.
	cancel()
	wg.Wait()
	g.Expect(oldGroup.Close()).To(Succeed())
	tc.produce(in, n/2, n)
	g.Eventually(r.p.bridge.Load).WithTimeout(time.Minute).Should(BeFalse(), "the replica stayed on the eager protocol")
	g.Eventually(func() string { return groupProtocol(t, tc, "bridge") }).WithTimeout(time.Minute).Should(Equal("cooperative-sticky"))
	g.Eventually(count).WithTimeout(time.Minute).Should(Equal(n))
	tc.expectCommittedAtEnd(g, "bridge", "in")
	r.stop(t)
}

// groupProtocol is the strategy the coordinator picked for the group, read with franz-go.
func groupProtocol(t testing.TB, tc *testCluster, group string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gs, err := tc.adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	return gs[group].Protocol
}
