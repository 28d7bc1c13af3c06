package scaling

import "math"

// capacity is what the policy knows of the replicas' throughput at one poll.
type capacity struct {
	// perReplica is the messages per second one replica processes: measured by the pods
	// (Input.MeasuredCapacity) or, until that is known, the commit-growth lower bound
	// (Input.ReplicaRate). 0 when neither is known.
	perReplica float64
	// useful is the most replicas that add throughput: those that reach Input.MaxThroughput
	// at perReplica, or the upper bound when no ceiling is known.
	useful int32
	// headroom multiplies the produce rate the keep-up replicas must process (see
	// measuredHeadroom).
	headroom float64
	// trail is the lag that is only the commit trail: what the replicas processed and commit
	// at their next commit (Params.CommitInterval of the rate they process). 0 when unknown.
	trail int64
}

// measuredHeadroom is the share above the produce rate that the keep-up replicas must
// process when the capacity is measured. A measured capacity is exact, so replicas that keep
// up with nothing to spare never work off the lag a rebalance piles up; after a scale-down to
// such a count the lag rule scales straight back up (12 -> 3 -> 12 every five minutes on the
// simulator's stuck-partition trace, 3 replicas at 92% of their capacity). The commit-growth
// estimate is a lower bound and has its headroom built in.
const measuredHeadroom = 1.2

// perReplica is the per-replica rate the rules use: the measured capacity when the pods
// report it, the lower bound estimated from commit growth otherwise.
func (in Input) perReplica() float64 {
	if in.MeasuredCapacity > 0 {
		return in.MeasuredCapacity
	}
	return max(in.ReplicaRate, 0)
}

// capacityOf is the per-replica rate and the useful replicas of in. A throughput ceiling is
// only trusted with a measured capacity: the commit-growth estimate is a lower bound, and a
// ceiling computed from it would hold too few replicas.
func capacityOf(in Input, ps spread, upper int32) capacity {
	c := capacity{perReplica: in.perReplica(), useful: upper, headroom: 1}
	if in.MeasuredCapacity > 0 {
		c.headroom = measuredHeadroom
	}
	if c.perReplica > 0 && in.ProduceRate > 0 && in.Params.CommitInterval > 0 {
		processing := min(in.ProduceRate, float64(max(in.Current, 0))*c.perReplica)
		c.trail = int64(processing * in.Params.CommitInterval.Seconds())
	}
	if in.MeasuredCapacity > 0 && in.MaxThroughput > 0 {
		c.useful = max(rateReplicas(in.MaxThroughput, in.MeasuredCapacity, ps, upper), 1)
	}
	return c
}

// lagTimeReplicas is what the lag time target asks for: the replicas that process the produce
// rate plus the lag spread over the target, lag / target + produce rate, at the per-replica
// capacity (the busiest replica's share, as for the keep-up replicas). 0 without a target or
// without a known capacity. It records its answer in w for explain.
func lagTimeReplicas(in Input, c capacity, ps spread, upper int32, w *wants) int32 {
	target := in.Params.LagTimeTarget.Seconds()
	if target <= 0 || c.perReplica <= 0 || in.Lag <= 0 {
		return 0
	}
	need := float64(in.Lag)/target + max(in.ProduceRate, 0)
	if math.IsInf(need, 0) || math.IsNaN(need) {
		return 0
	}
	w.target = rateReplicas(need, c.perReplica, ps, upper)
	return w.target
}
