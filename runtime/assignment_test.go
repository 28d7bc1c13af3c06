package runtime

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// TestAssignmentOverTopics runs five replicas on three topics of 4, 2 and 1 partitions and
// reads from the coordinator what each got. Range assigns each topic on its own: only 4
// replicas (the largest topic) get work, the busiest holds 3 partitions. CooperativeSticky
// spreads all 7: every replica gets work, the busiest holds 2. The operator's replica cap
// and partition rounding (scaling.Assignment) count the same.
func TestAssignmentOverTopics(t *testing.T) {
	for _, c := range []struct {
		strategy        string
		withWork, maxed int32
	}{{"Range", 4, 3}, {"CooperativeSticky", 5, 2}} {
		t.Run(c.strategy, func(t *testing.T) {
			g := NewWithT(t)
			tc := newTestCluster(t, map[string]int32{"a": 4, "b": 2, "c": 1, "out": 1})
			spec := tc.baseSpec("spread-" + c.strategy)
			spec["topics"] = []string{"a", "b", "c"}
			spec["kafka"].(map[string]any)["rebalanceStrategy"] = c.strategy
			for range 5 {
				start(t, specJSON(t, spec))
			}
			predicted := scaling.Assignment{TopicPartitions: []int32{4, 2, 1}, PerTopic: c.strategy == "Range"}
			g.Expect(min(predicted.WithWork(), 5)).To(Equal(c.withWork), "replicas with work, of 5")
			g.Expect(predicted.Busiest(5)).To(Equal(c.maxed))
			g.Eventually(func() string { return assigned(t, tc, "spread-"+c.strategy) }).
				WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).
				Should(Equal(fmt.Sprintf("7 partitions, %d replicas with work, busiest %d", c.withWork, c.maxed)))
		})
	}
}

// assigned summarizes the group's current assignment, read with franz-go.
func assigned(t *testing.T, tc *testCluster, group string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gs, err := tc.adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	total, withWork, busiest := 0, 0, 0
	for _, m := range gs[group].Members {
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			continue
		}
		n := 0
		for _, tp := range a.Topics {
			n += len(tp.Partitions)
		}
		total += n
		if n > 0 {
			withWork++
		}
		busiest = max(busiest, n)
	}
	return fmt.Sprintf("%d partitions, %d replicas with work, busiest %d", total, withWork, busiest)
}
