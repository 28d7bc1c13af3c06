package scaling

import "time"

// Poll is one read of a pipeline's offsets: what the lag reader returned and when it read
// the log-end offsets (Newest) and the group's committed offsets.
type Poll struct {
	Offsets     []Offsets
	NewestAt    time.Time
	CommittedAt time.Time
	// Replicas is the most pods that may have been consuming at the poll: the Deployment's
	// replicas, or more while a rollout runs old and new pods side by side.
	Replicas int32
}

// Rates is the traffic measured between two polls, over the partitions that are not
// stalled.
type Rates struct {
	// Produce is the growth of the log-end offsets, in messages per second.
	Produce float64
	// Consume is the growth of the committed offsets, in messages per second.
	Consume float64
	// PerReplica is what the replicas committed during the interval, divided by the most
	// replicas that ran and by the interval plus one commit interval (a committed offset
	// trails the processed one by up to a commit interval, so the work committed in the
	// interval may have taken that much longer): a lower bound of what one replica can
	// process; replicas that were starting or rebalancing only make it lower. Zero when no
	// replica ran, and when the interval ended with the replicas caught up (no more left to
	// commit than two commit intervals of their work): replicas that ran out of work were idle
	// part of the time, and their rate says nothing about what one replica can do.
	PerReplica float64
	// OK is false when the two polls cannot be compared (no earlier poll, no time between
	// them).
	OK bool
}

// MeasureRates compares two polls. Partitions in skip (stalled ones) are left out; so is a
// partition whose log-end offset went back (the topic was re-created) and, for the consume
// rate, one whose committed offset is missing, out of range or went back (a reset): a reset is
// not consumption. commitInterval is how often the consumers commit.
func MeasureRates(prev, cur Poll, skip map[TopicPartition]bool, commitInterval time.Duration) Rates {
	var r Rates
	dNewest := cur.NewestAt.Sub(prev.NewestAt).Seconds()
	dCommitted := cur.CommittedAt.Sub(prev.CommittedAt).Seconds()
	if prev.NewestAt.IsZero() || dNewest <= 0 || dCommitted <= 0 {
		return r
	}
	before := make(map[TopicPartition]Offsets, len(prev.Offsets))
	for _, o := range prev.Offsets {
		before[o.TopicPartition] = o
	}
	var produced, consumed, left int64
	for _, o := range cur.Offsets {
		p, ok := before[o.TopicPartition]
		if !ok || skip[o.TopicPartition] || o.Newest < p.Newest {
			continue
		}
		produced += o.Newest - p.Newest
		if p.Committed >= 0 && o.Committed >= p.Committed && o.Committed <= o.Newest {
			consumed += o.Committed - p.Committed
			left += o.Newest - o.Committed
		}
	}
	r.OK = true
	r.Produce = float64(produced) / dNewest
	r.Consume = float64(consumed) / dCommitted
	// Only an interval that ended with the replicas still behind measures what they can do:
	// more left to commit than two commit intervals of their work (the commit trail alone is
	// up to one). Replicas that caught up were idle part of the time, and a sample from them
	// would understate a replica and overstate the replicas needed.
	behind := float64(left) > r.Consume*2*max(commitInterval, 0).Seconds()
	if n := max(prev.Replicas, cur.Replicas); n > 0 && behind {
		r.PerReplica = float64(consumed) / (dCommitted + max(commitInterval, 0).Seconds()) / float64(n)
	}
	return r
}

// CapacityMemory is how long a per-replica rate sample is remembered, and capacityBucket the
// granularity of that memory (the highest sample of each bucket is kept).
const (
	CapacityMemory = time.Hour
	capacityBucket = 5 * time.Minute
)

// CapacitySample is the highest per-replica rate seen in one bucket of time.
type CapacitySample struct {
	Time time.Time
	Rate float64
}

// Capacity estimates how many messages per second one replica can process: the highest
// per-replica rate measured within CapacityMemory. Each measurement is a lower bound (see
// Rates.PerReplica), so the highest one is the best lower bound; it is reached when the
// replicas were busy working off a backlog. An estimate that was never measured is zero
// (unknown), and the rules that need it do not apply.
type Capacity []CapacitySample

// Observe adds a per-replica rate sample taken at now and forgets samples older than
// CapacityMemory.
func (c Capacity) Observe(now time.Time, perReplica float64) Capacity {
	out := make(Capacity, 0, len(c)+1)
	for _, s := range c {
		if now.Sub(s.Time) < CapacityMemory {
			out = append(out, s)
		}
	}
	if perReplica <= 0 {
		return out
	}
	if n := len(out); n > 0 && now.Sub(out[n-1].Time) < capacityBucket {
		out[n-1].Rate = max(out[n-1].Rate, perReplica)
		return out
	}
	return append(out, CapacitySample{Time: now, Rate: perReplica})
}

// Estimate is the highest sample within CapacityMemory of now, or zero.
func (c Capacity) Estimate(now time.Time) float64 {
	var best float64
	for _, s := range c {
		if now.Sub(s.Time) < CapacityMemory {
			best = max(best, s.Rate)
		}
	}
	return best
}
