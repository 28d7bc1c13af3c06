package scaling

import (
	"math"
	"time"
)

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
