package runtime

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	. "github.com/onsi/gomega"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetchesOutliveJoinGroup: a Kafka broker answers a connection's requests one at a time,
// in order, and holds a JoinGroup until the round completes. The broker is the group's
// coordinator and leads every partition. A second pipeline joins; the coordinator holds the
// first pipeline's JoinGroup (kfake's control, as a round waiting for a slow member would)
// while new messages arrive. On the incremental protocol the first pipeline must go on
// consuming them: its fetches travel on another connection than its JoinGroup. When both
// shared the coordinator broker's connection, nothing was consumed until the round ended.
func TestFetchesOutliveJoinGroup(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 4, "dlq": 1})
	in := input{topic: "in", n: 400, keys: 40, partitions: 4}
	tc.produce(in, 0, 40)
	var (
		held          atomic.Bool
		mu            sync.Mutex
		handled       = map[int]int{}
		handledInHold int // messages produced during the hold and handled before it ended
	)
	count := HandlerFunc(func(_ context.Context, m *Message) error {
		v, _ := strconv.Atoi(string(m.Value))
		mu.Lock()
		defer mu.Unlock()
		handled[v]++
		if v >= 40 && held.Load() {
			handledInHold++
		}
		return nil
	})
	patient := WithSaramaConfig(func(sc *sarama.Config) { // nobody leaves the group during the hold
		fastGroup(sc)
		sc.Consumer.Group.Session.Timeout = 30 * time.Second
		sc.Consumer.Group.Rebalance.Timeout = 30 * time.Second
	})
	spec := specJSON(t, tc.handlerSpec("split"))
	a := start(t, spec, WithHandler(count), patient)
	g.Eventually(func() int { mu.Lock(); defer mu.Unlock(); return len(handled) }).WithTimeout(time.Minute).Should(Equal(40))
	aID := soleMember(g, tc, "split")

	release := make(chan struct{})
	tc.c.ControlKey(int16(kmsg.JoinGroup), func(r kmsg.Request) (kmsg.Response, error, bool) {
		if r.(*kmsg.JoinGroupRequest).MemberID != aID {
			return nil, nil, false // B's joins, handled as usual
		}
		tc.c.DropControl()
		held.Store(true)
		tc.c.SleepControl(func() {
			select {
			case <-release:
			case <-time.After(20 * time.Second): // within the session timeout
			}
		})
		held.Store(false)
		return nil, nil, false
	})
	b := start(t, spec, WithHandler(count), patient)
	g.Eventually(held.Load).WithTimeout(time.Minute).Should(BeTrue(), "the first pipeline rejoins")
	tc.produce(in, 40, in.n)
	g.Eventually(func() int { mu.Lock(); defer mu.Unlock(); return handledInHold }).WithTimeout(15*time.Second).
		Should(BeNumerically(">", 0), "nothing consumed while the coordinator held the first pipeline's JoinGroup")
	close(release)

	g.Eventually(func() int { mu.Lock(); defer mu.Unlock(); return len(handled) }).WithTimeout(time.Minute).Should(Equal(in.n))
	a.stop(t)
	b.stop(t)
	tc.expectCommittedAtEnd(g, "split", "in")
}

// soleMember is the ID of the group's only member, once it is stable.
func soleMember(g Gomega, tc *testCluster, group string) string {
	var id string
	g.Eventually(func() int {
		gs, err := tc.adm.DescribeGroups(context.Background(), group)
		if err != nil || gs[group].State != "Stable" {
			return 0
		}
		for _, m := range gs[group].Members {
			id = m.MemberID
		}
		return len(gs[group].Members)
	}).WithTimeout(time.Minute).Should(Equal(1))
	return id
}
