package scalesim

import (
	"fmt"
	"math"
	"os"
	"testing"
	"time"
)

func TestStickyBalanceMovesFewest(t *testing.T) {
	s := newSticky(Rebalance{}, 12, 3) // 4 partitions each
	before := append([]int(nil), s.owner...)
	s.balance(4)
	moved, load := 0, map[int]int{}
	for p, o := range s.owner {
		load[o]++
		if o != before[p] {
			moved++
			if o != 3 {
				t.Errorf("partition %d moved from %d to %d, an old member", p, before[p], o)
			}
		}
	}
	if moved != 3 || len(load) != 4 || load[0] != 3 || load[3] != 3 {
		t.Fatalf("3 -> 4 members moved %d partitions (want 3, one from each), loads %v", moved, load)
	}
	s.balance(5) // 12 over 5: two members hold 3, three hold 2
	counts := map[int]int{}
	for _, o := range s.owner {
		counts[o]++
	}
	threes := 0
	for m, c := range counts {
		if c != 2 && c != 3 || m > 4 {
			t.Fatalf("5 members: member %d holds %d partitions (%v)", m, c, counts)
		}
		if c == 3 {
			threes++
		}
	}
	if threes != 2 {
		t.Fatalf("5 members over 12 partitions: %d hold 3, want 2 (%v)", threes, counts)
	}
}

func TestCooperativeScaleUpKeepsTheOthersConsuming(t *testing.T) {
	w := DefaultWorld()
	w.Rebalance = &Rebalance{Start: 3 * time.Second, Kept: 500 * time.Millisecond, Moved: 2 * time.Second}
	s := newWorld(w, Trace{Partitions: 4, Stuck: -1, Traffic: constant(4000)})
	s.replicas, s.coop = 2, newSticky(*w.Rebalance, 4, 2)
	s.scaled(0, 2, 4) // decided at 0: the new replicas join at 4
	processedIn := func(sec int) float64 {
		var before float64
		for _, v := range s.processed {
			before += v
		}
		s.step(sec)
		var after float64
		for _, v := range s.processed {
			after += v
		}
		return after - before
	}
	for sec := range 4 {
		if got := processedIn(sec); math.Abs(got-2000) > 1e-6 || s.members() != 2 {
			t.Fatalf("second %d while the new pods start: %.0f processed by %d members, want 2000 by 2", sec, got, s.members())
		}
	}
	// Second 4: the two new members join; the two moved partitions pause 2 s, the kept ones
	// half a second, so each old member works half of it.
	if got := processedIn(4); math.Abs(got-1000) > 1e-6 || s.members() != 4 {
		t.Fatalf("second 4: %.0f processed by %d members, want 1000 by 4", got, s.members())
	}
}

// TestCooperativeWorld logs, per trace, kpipe and KEDA in the eager world of the benchmark and
// in a cooperative one with the rebalance costs measured for kpipe's runtime
// (MeasuredRebalance):
//
//	SCALESIM_COOPERATIVE=1 go test ./test/bench/scalesim -run TestCooperativeWorld -v
func TestCooperativeWorld(t *testing.T) {
	if os.Getenv("SCALESIM_COOPERATIVE") == "" {
		t.Skip("set SCALESIM_COOPERATIVE=1")
	}
	eager := DefaultWorld()
	coop := eager
	coop.Rebalance = MeasuredRebalance()
	t.Logf("| trace | kpipe, eager | kpipe, cooperative | KEDA, eager | KEDA, cooperative |")
	cell := func(r Result) string {
		return fmt.Sprintf("%s, %d rs, %d changes, %s backlogged", r.Drain, r.ReplicaSeconds, r.ScaleChanges, r.Backlogged)
	}
	for _, tr := range Traces() {
		keda := func(w World) Result { return Run(w, tr, NewKeda(w.LagPerReplica, w.MinReplicas, w.MaxReplicas)) }
		t.Logf("| %s | %s | %s | %s | %s |", tr.Name, cell(Run(eager, tr, newKpipe(eager, AllSignals()))),
			cell(Run(coop, tr, newKpipe(coop, AllSignals()))), cell(keda(eager)), cell(keda(coop)))
	}
}
