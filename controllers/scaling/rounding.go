package scaling

import (
	"math"
	"time"
)

// ceilDiv is ceil(lag/per) as an int32, saturating; lag below zero counts as zero.
func ceilDiv(lag, per int64) int32 {
	if lag <= 0 {
		return 0
	}
	if per <= 0 {
		per = 1
	}
	n := lag / per
	if lag%per != 0 {
		n++
	}
	if n > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(n)
}

// upperBound is min(maxReplicas, the replicas that get a partition) (maxReplicas when the
// partitions are unknown).
func upperBound(p Params, ps spread) int32 {
	if c := ps.cap(); c > 0 && c < p.MaxReplicas {
		return c
	}
	return p.MaxReplicas
}

// RateReplicas is the fewest replicas, up to upper, with which the busiest replica keeps up
// with the produce rate: it owns ceil(partitions / n) partitions of produce / partitions
// messages per second each (the traffic spread evenly, as the default partitioner does), and
// processes perReplica messages per second. upper when none does.
func RateReplicas(produce, perReplica float64, partitions, upper int32) int32 {
	return rateReplicas(produce, perReplica, spread{total: partitions}, upper)
}

func rateReplicas(produce, perReplica float64, ps spread, upper int32) int32 {
	if produce <= 0 {
		return 0
	}
	if perReplica <= 0 || upper <= 0 {
		return max(upper, 0)
	}
	if ps.total <= 0 {
		ps = spread{total: upper}
	}
	perPartition := produce / float64(ps.total)
	for n := int32(1); n < upper; n++ {
		if float64(ps.busiest(n))*perPartition <= perReplica {
			return n
		}
	}
	return upper
}

// bound applies [min, min(max, replicas that get a partition)] and the partition rounding.
func bound(n int32, p Params, ps spread) int32 {
	upper := upperBound(p, ps)
	if n > upper {
		n = upper
	}
	if n < p.MinReplicas {
		n = p.MinReplicas
	}
	if n > ps.cap() || ps.cap() <= 0 {
		return n // above the replicas that get a partition only because of minReplicas: leave it
	}
	return efficientReplicas(n, ps, p.MinReplicas)
}

// EfficientReplicas is the fewest replicas, at least floor (and at least 1), that give the
// busiest replica as few partitions as n replicas do: ceil(partitions/m) == ceil(partitions/n).
// Replicas beyond that count would only take partitions from the less busy replicas.
func EfficientReplicas(n, partitions, floor int32) int32 {
	return efficientReplicas(n, spread{total: partitions}, floor)
}

// efficientReplicas is EfficientReplicas for the partitions as the assignor spreads them.
func efficientReplicas(n int32, ps spread, floor int32) int32 {
	if n <= 0 || ps.total <= 0 {
		return n
	}
	load := ps.busiest(n)
	for m := max(floor, 1); m < n; m++ {
		if ps.busiest(m) == load {
			return m
		}
	}
	return n
}

// stabilize drops recommendations older than the window and appends rec.
func stabilize(history []Recommendation, now time.Time, window time.Duration, rec int32) []Recommendation {
	out := make([]Recommendation, 0, len(history)+1)
	for _, h := range history {
		if now.Sub(h.Time) < window {
			out = append(out, h)
		}
	}
	return append(out, Recommendation{Time: now, Replicas: rec})
}

func maxRecommendation(h []Recommendation) int32 {
	var m int32
	for _, r := range h {
		m = max(m, r.Replicas)
	}
	return m
}

// stabilized is the count the scale-down stabilization allows: the highest recommendation
// within the window (history, this poll's rec last), as the HPA does, never above the current
// count unless rec asks for more (old recommendations hold replicas, they add none). A
// scale-down is a rebalance, and a drained backlog's recommendations fall poll by poll, so
// stepping down through them costs one rebalance each (`make demo`: 12 -> 6 -> 3 -> 2 -> 1
// within five seconds). So once the whole window allows a scale-down, it goes as far as it can
// in one change: to the level the window settled on after a tail (see tailLevel), or else as
// far as the window will allow one poll later.
func stabilized(history []Recommendation, now time.Time, window, poll time.Duration, current, rec int32) int32 {
	high := maxRecommendation(history)
	if high >= current {
		return min(high, max(current, rec))
	}
	if level, ok := tailLevel(history, now, 2*poll); ok {
		return max(level, rec)
	}
	var next int32
	for _, h := range history {
		if now.Sub(h.Time) < window-poll {
			next = max(next, h.Replicas)
		}
	}
	return max(next, rec)
}

// tailLevel splits the window into a tail and a level: every recommendation of the tail (the
// older part: a backlog being worked off, a load before it fell) is above every one of the
// level (the newer part, at least span long), so the higher counts came once and are over.
// It returns the level's highest recommendation for the longest such tail, and false when
// there is none: recommendations that rose again after falling (spikes that come back) are
// held as the HPA holds them.
func tailLevel(h []Recommendation, now time.Time, span time.Duration) (int32, bool) {
	n := len(h)
	suffixMax := make([]int32, n+1)
	for i := n - 1; i >= 0; i-- {
		suffixMax[i] = max(suffixMax[i+1], h[i].Replicas)
	}
	level, found := int32(0), false
	prefixMin := int32(math.MaxInt32)
	for k := 1; k < n; k++ {
		prefixMin = min(prefixMin, h[k-1].Replicas)
		if prefixMin > suffixMax[k] && now.Sub(h[k].Time) >= span {
			level, found = suffixMax[k], true
		}
	}
	return level, found
}
