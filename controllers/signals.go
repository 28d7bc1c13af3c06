package controllers

import (
	"math"
	"time"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/lag"
	"github.com/kpipe-io/kpipe/controllers/scaling"
	"github.com/kpipe-io/kpipe/internal/telemetry"
)

// This file turns what the pods report (the telemetry record in each partition's commit
// metadata) and what the group coordinator says (DescribeGroups) into the operator's
// signals: each partition's health, the lag in seconds, and the measured per-replica
// capacity. docs/scaling.md, "What the pods report", is the user's side of it.

// signals is what one poll's records and group state tell, per partition and in all.
type signals struct {
	health   map[scaling.TopicPartition]scaling.Health
	stuck    []scaling.TopicPartition // retrying, dead letter unwritable or stuck, in input order
	slow     []scaling.TopicPartition
	reported map[scaling.TopicPartition]bool // partitions with a fresh telemetry record
	resting  bool                            // the group has no members (pods resting in their idle penalty)
	capacity float64                         // measured messages per second per replica; 0 unknown
	// stuckLag is the stuck partitions' lag, which adds no replicas; slowLag the lag of the
	// partitions on serial work (slow, or retrying for over a poll: scaling.Serial) beyond one
	// replica's worth each (scaling.SlowLagBeyondOneReplica).
	stuckLag, slowLag int64
}

// recordGrace is how long past three polls a record stays fresh. A pod refreshes it at every
// commit, once a second, but not while it waits for a rebalance (its commits wait for the
// new session) nor, on a starved node, on time; a pod that is gone leaves the group within
// its session timeout (10s to 45s), so its partitions are rebalancing by then.
const recordGrace = 15 * time.Second

// healthParams are the freshness and slowness bounds for a pipeline: a record is stale after
// three polls and recordGrace, a message in flight for as long as the stall threshold makes a
// partition slow, and one retried for longer than a poll makes its lag serial.
func healthParams(spec *kpipev1.KafkaPipelineSpec, stallPolls int, now time.Time) scaling.HealthParams {
	poll := spec.Scaling.PollInterval.Duration
	return scaling.HealthParams{
		Now:         now,
		StaleAfter:  3*poll + recordGrace,
		SlowAfter:   time.Duration(stallPolls) * poll,
		SerialAfter: poll,
	}
}

// groupSignals is the group's state as Classify takes it.
func groupSignals(g *lag.GroupState) scaling.GroupSignals {
	if g == nil {
		return scaling.GroupSignals{}
	}
	return scaling.GroupSignals{Known: true, Rebalancing: g.Rebalancing(), Members: len(g.Members)}
}

// classifyPartitions tells each partition's health from the offsets' stall tracking (offsetStalled),
// the poll's records and the group's state.
func classifyPartitions(lags []scaling.PartitionLag, offsetStalled map[scaling.TopicPartition]bool, res *lag.Result,
	hp scaling.HealthParams, lagPerReplica int64) signals {
	g := groupSignals(res.Group)
	s := signals{health: make(map[scaling.TopicPartition]scaling.Health, len(lags)), resting: g.Known && g.Members == 0,
		reported: map[scaling.TopicPartition]bool{}}
	for _, pl := range lags {
		if hp.Fresh(res.Records[pl.TopicPartition]) != nil {
			s.reported[pl.TopicPartition] = true
		}
		h := scaling.Classify(pl, offsetStalled[pl.TopicPartition], res.Records[pl.TopicPartition], g, hp)
		s.health[pl.TopicPartition] = h
		switch {
		case h.Stuck():
			s.stuck = append(s.stuck, pl.TopicPartition)
			s.stuckLag += pl.Lag
		case scaling.Serial(h, res.Records[pl.TopicPartition], hp):
			s.slowLag += scaling.SlowLagBeyondOneReplica(pl.Lag, lagPerReplica)
		}
		if h == scaling.HealthSlow {
			s.slow = append(s.slow, pl.TopicPartition) // for the status: a retried one is not slow
		}
	}
	s.capacity = scaling.MeasuredCapacity(res.Records, hp)
	return s
}

// lagClock is what the lag in seconds needs from earlier polls, per partition: the produce
// rate (for partitions without a record) and when the partition was last seen without lag.
type lagClock map[scaling.TopicPartition]*partitionClock

type partitionClock struct {
	newest     int64
	newestAt   time.Time
	rate       float64   // messages per second produced, smoothed; 0 unknown
	caughtUpAt time.Time // the last poll that saw no lag; zero when none was seen
	lagSince   time.Time // the first poll of the current run with lag
}

// produceSmoothing is the weight of the newest interval in the produce rate.
const produceSmoothing = 0.5

// observe updates the clocks with one poll and returns each partition's lag in seconds.
func (c lagClock) observe(res *lag.Result, lags []scaling.PartitionLag, hp scaling.HealthParams) map[scaling.TopicPartition]float64 {
	newest := make(map[scaling.TopicPartition]int64, len(res.Offsets))
	for _, o := range res.Offsets {
		newest[o.TopicPartition] = o.Newest
	}
	out := make(map[scaling.TopicPartition]float64, len(lags))
	seen := make(map[scaling.TopicPartition]bool, len(lags))
	for _, pl := range lags {
		seen[pl.TopicPartition] = true
		pc := c[pl.TopicPartition]
		if pc == nil {
			pc = &partitionClock{newest: newest[pl.TopicPartition], newestAt: res.NewestAt}
			c[pl.TopicPartition] = pc
		}
		pc.sample(newest[pl.TopicPartition], res.NewestAt)
		if pl.Lag <= 0 {
			pc.caughtUpAt, pc.lagSince = hp.Now, time.Time{}
			continue
		}
		if pc.lagSince.IsZero() {
			pc.lagSince = hp.Now
		}
		out[pl.TopicPartition] = pc.lagSeconds(pl.Lag, hp.Fresh(res.Records[pl.TopicPartition]), hp.Now)
	}
	for tp := range c {
		if !seen[tp] {
			delete(c, tp)
		}
	}
	return out
}

// sample folds the growth of the newest offset since the last read into the produce rate.
func (pc *partitionClock) sample(newest int64, at time.Time) {
	dt := at.Sub(pc.newestAt).Seconds()
	if dt <= 0 {
		return // the same shared read as last time
	}
	if r := float64(newest-pc.newest) / dt; r >= 0 {
		pc.rate = produceSmoothing*r + (1-produceSmoothing)*pc.rate
	}
	pc.newest, pc.newestAt = newest, at
}

// lagSeconds estimates how long the partition's oldest waiting message has waited. The
// record's last committed timestamp is the best word (the waiting message is the next one);
// without it, the lag over the produce rate. Either is capped by the time since the
// partition was last seen caught up: the waiting message was produced after that. With
// neither a record nor a produce rate, the time since lag was first seen is a lower bound.
func (pc *partitionClock) lagSeconds(lagMsgs int64, rec *telemetry.Record, now time.Time) float64 {
	upper := math.Inf(1)
	if !pc.caughtUpAt.IsZero() {
		upper = now.Sub(pc.caughtUpAt).Seconds()
	}
	var est float64
	switch {
	case rec != nil && !rec.LastTimestamp.IsZero():
		est = now.Sub(rec.LastTimestamp).Seconds()
	case pc.rate > 0:
		est = float64(lagMsgs) / pc.rate
	case !math.IsInf(upper, 1):
		est = upper
	default:
		est = now.Sub(pc.lagSince).Seconds()
	}
	return max(0, min(est, upper))
}

// topicLagSeconds is the largest lag in seconds of each topic's partitions.
func topicLagSeconds(perPartition map[scaling.TopicPartition]float64) map[string]float64 {
	out := map[string]float64{}
	for tp, s := range perPartition {
		out[tp.Topic] = max(out[tp.Topic], s)
	}
	return out
}
