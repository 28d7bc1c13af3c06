package scalesim

import "time"

// Rebalance is what a change of the group's members costs under a cooperative assignor
// (kpipe's default, cooperative-sticky), as test/storm.BenchmarkRebalanceGap measures it for
// kpipe's runtime. Without one (World.Rebalance nil) the world is eager: every change pauses
// every partition for World.RebalancePause, and partition p belongs to member p mod members.
type Rebalance struct {
	// Start is how long a new replica takes to start and join after a scale-up; the
	// replicas already in the group consume meanwhile. A scale-down's replicas leave at once.
	Start time.Duration
	// Kept is how long a partition that keeps its owner pauses.
	Kept time.Duration
	// Moved is how long a partition that changes owner (or is assigned after a rest) pauses.
	Moved time.Duration
}

// MeasuredRebalance is kpipe's runtime after issue 11 (docs/benchmarks.md, "Rebalance
// gaps"): kept partitions pause 0.11 to 0.15 s, moved ones 1.25 to 1.28 s (medians). A new
// pod's start is not measured here; 4 s makes a moved partition resume about when the eager
// world's 5 s pause ends.
func MeasuredRebalance() *Rebalance {
	return &Rebalance{Start: 4 * time.Second, Kept: 150 * time.Millisecond, Moved: 1300 * time.Millisecond}
}

// sticky is the group's assignment under a cooperative assignor: partitions keep their owner
// where the balance allows, and each pauses from a change as Rebalance says.
type sticky struct {
	r          Rebalance
	owner      []int     // the member that owns each partition, -1 for none
	members    int32     // the members the assignment is for
	pausedTill []float64 // per partition: consumption resumes at this (fractional) second
	joinAt     int       // replicas above members join from this second on
}

func newSticky(r Rebalance, partitions int, members int32) *sticky {
	s := &sticky{r: r, owner: make([]int, partitions), pausedTill: make([]float64, partitions)}
	for p := range s.owner {
		s.owner[p] = -1
	}
	s.balance(members)
	return s
}

// scaledUp records a scale-up decided at second t: the new replicas join once started.
func (s *sticky) scaledUp(t int) { s.joinAt = t + 1 + int(s.r.Start/time.Second) }

// rejoined records that resting replicas rejoin at second t: no pod starts.
func (s *sticky) rejoined(t int) { s.joinAt = t }

// sync brings the assignment to want members at second t: at once when members leave, from
// joinAt when they join. Every partition pauses: Moved when it changed owner, else Kept.
func (s *sticky) sync(t int, want int32) {
	if want == s.members || (want > s.members && t < s.joinAt) {
		return
	}
	before := append([]int(nil), s.owner...)
	s.balance(want)
	for p, o := range s.owner {
		pause := s.r.Kept
		if o != before[p] {
			pause = s.r.Moved
		}
		s.pausedTill[p] = max(s.pausedTill[p], float64(t)+pause.Seconds())
	}
}

// balance assigns the partitions to n members, moving as few as it can: each member ends with
// the partition count divided by n, rounded down or up.
func (s *sticky) balance(n int32) {
	s.members = n
	if n == 0 {
		for p := range s.owner {
			s.owner[p] = -1
		}
		return
	}
	base, extra := len(s.owner)/int(n), len(s.owner)%int(n) // extra members hold base+1
	load := make([]int, n)
	above := 0 // members kept at base+1
	for p, o := range s.owner {
		switch {
		case o < 0 || o >= int(n):
			s.owner[p] = -1
		case load[o] < base:
			load[o]++
		case load[o] == base && above < extra:
			load[o]++
			above++
		default:
			s.owner[p] = -1 // above its share: given up
		}
	}
	for p, o := range s.owner {
		if o < 0 {
			m := leastLoaded(load)
			s.owner[p] = m
			load[m]++
		}
	}
}

// leastLoaded is the member with the fewest partitions, the lowest index first.
func leastLoaded(load []int) int {
	m := 0
	for i, l := range load {
		if l < load[m] {
			m = i
		}
	}
	return m
}

// available is the share of second t during which partition p consumes.
func (s *sticky) available(p, t int) float64 {
	return min(max(float64(t+1)-max(float64(t), s.pausedTill[p]), 0), 1)
}
