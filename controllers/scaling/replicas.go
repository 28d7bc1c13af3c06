package scaling

import "math"

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
