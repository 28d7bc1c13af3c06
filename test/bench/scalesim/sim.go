// Package scalesim replays traffic traces through two autoscalers — kpipe's scaling policy
// (the real pure functions of controllers/scaling) and a model of KEDA's Kafka scaler driving
// the Kubernetes HPA with its defaults — and measures what each costs and achieves, against an
// oracle that knows the whole trace in advance (oracle.go).
//
// The world (world.go) is simulated one second at a time. The trace's traffic is spread evenly
// over the partitions (the stuck one included: producers do not know it is stuck), each replica
// in the group processes Rate messages per second over the partitions it owns (assigned
// round-robin, as balancing assignors do; a replica's capacity goes to its partitions that
// have messages waiting), and a stuck partition processes nothing. A trace may add a sink that
// throttles (the replicas together process at most SinkLimit), a slow key (one message every
// so often that takes a minute, and holds its partition's committed offset meanwhile), and the
// runtime's idle rest (the replicas leave the group after the idle window without work and
// rejoin after the penalty). Committed offsets are the processed positions as of the last
// commit: like kpipe's runtime, consumers commit every CommitInterval (1 s), so the offsets read
// in a second show what was processed up to the start of that second. Every change of the
// replica count pauses all consumption for RebalancePause (pods starting and the group
// rebalancing), for both autoscalers alike. The world also reports what kpipe's pods would put
// in their telemetry (Telemetry); KEDA reads offsets only.
package scalesim

import (
	"time"

	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// Trace is a traffic pattern.
type Trace struct {
	Name       string
	Partitions int
	// Duration is how long the simulation runs.
	Duration time.Duration
	// Traffic is the total produce rate, in messages per second, at second t.
	Traffic func(t int) float64
	// Stuck is the partition that stops processing from StuckFrom on; -1 for none.
	Stuck     int
	StuckFrom time.Duration
	// SinkLimit caps what all replicas together process per second (a sink that throttles:
	// each replica waits longer as more share it); 0 for none.
	SinkLimit float64
	// Slow is a key whose messages each take a long time, or nil.
	Slow *SlowKey
	// Rest is true when the replicas rest in the runtime's idle penalty (World.IdleWindow,
	// World.IdlePenalty), as pods of a pipeline with minReplicas 1 do.
	Rest bool
}

// SlowKey is one key whose handler takes Takes per message. One of its messages arrives on
// Partition every Every from From on; they are handled one at a time (key order), and the
// partition's committed offset cannot pass an unfinished one, whatever the replicas.
type SlowKey struct {
	Partition   int
	From, Every time.Duration
	Takes       time.Duration
}

// World are the simulation's constants, the same for both autoscalers.
type World struct {
	// Rate is what one replica processes per second over the partitions it owns.
	Rate float64
	// Workers is the replica's worker pool: a slow message holds one of them.
	Workers int
	// RebalancePause is how long consumption stops after a replica count change, in an
	// eager group (Rebalance nil).
	RebalancePause time.Duration
	// Rebalance, when set, makes the group cooperative: see Rebalance.
	Rebalance *Rebalance
	// MinReplicas and MaxReplicas bound both autoscalers.
	MinReplicas, MaxReplicas int32
	// LagPerReplica is kpipe's lagPerReplica and KEDA's lagThreshold.
	LagPerReplica int64
	// CommitInterval is how often consumers commit what they processed (whole seconds; zero
	// commits every second).
	CommitInterval time.Duration
	// IdleWindow and IdlePenalty are the runtime's idle.window and idle.penalty, for traces
	// with Rest.
	IdleWindow, IdlePenalty time.Duration
}

// Telemetry is what the pods of the pipeline would report at one second: the runtime's
// record in the commit metadata (internal/telemetry), and the group's members as
// DescribeGroups shows them.
type Telemetry struct {
	// Members is the replicas in the consumer group (not resting).
	Members int32
	// Replicas holds one entry per member that consumed this second.
	Replicas []ReplicaTelemetry
	// Partitions is indexed by partition.
	Partitions []PartitionTelemetry
}

// ReplicaTelemetry is one replica's processed rate and busy fraction: capacity = Rate / Busy.
type ReplicaTelemetry struct {
	Rate, Busy float64
	// Partitions is how many partitions the replica owns, the stuck one included.
	Partitions int
}

// PartitionTelemetry is one partition's owner and in-flight work.
type PartitionTelemetry struct {
	// Owner indexes Telemetry.Replicas: the member that owns the partition.
	Owner          int
	InFlight       int
	OldestInFlight time.Duration
	// Retrying is true when the oldest message in flight is between attempts (the stuck
	// partition's poison message).
	Retrying bool
}

// Autoscaler decides replica counts. Step is called every simulated second with the offsets
// of that second and the current replica count, and returns the replica count to run.
type Autoscaler interface {
	Step(now time.Time, offsets []scaling.Offsets, current int32) int32
}

// TelemetryReader is an Autoscaler that also reads the pods' telemetry; Run hands it each
// second's before Step.
type TelemetryReader interface {
	Telemetry(t Telemetry)
}

// StallReporter is an Autoscaler that reports the partitions it calls stalled; Run counts
// the seconds it calls one stalled that is not stuck.
type StallReporter interface {
	Stalled() []int32
}

// Result is what one replay measured. Lag here is the backlog, produced - processed: what the
// world has not processed yet. The autoscalers see committed offsets, which trail the
// processed ones by up to a commit interval.
type Result struct {
	// Drain is the time from the highest lag of the partitions that are not stuck to the
	// first second after it when their lag is back at or below the drain level
	// (LagPerReplica); the simulation's end when it never is.
	Drain time.Duration
	// Backlogged is how long, in all, the lag of the partitions that are not stuck was above
	// the drain level.
	Backlogged time.Duration
	// ReplicaSeconds is the sum over the simulation of the replicas running.
	ReplicaSeconds int64
	// ScaleChanges is the number of replica count changes.
	ScaleChanges int
	// MaxLag is the highest total backlog.
	MaxLag int64
	// MaxReplicas is the highest replica count.
	MaxReplicas int32
	// FalseStalled is how many seconds the autoscaler called a partition stalled that was
	// not stuck (StallReporter only).
	FalseStalled time.Duration
	// Backlog is the backlog of the partitions that are not stuck at every second: the drain
	// profile the oracle must match.
	Backlog []float64
}

// simStart is the simulated time of second 0.
var simStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Run replays tr through a.
func Run(w World, tr Trace, a Autoscaler) Result {
	s := newWorld(w, tr)
	var res Result
	var peak float64
	peakAt, drainedAt := -1, -1
	secs := int(tr.Duration / time.Second)
	level := float64(w.LagPerReplica)
	for t := range secs {
		s.step(t)
		offsets, total, unstuck := observe(s.produced, s.processed, s.committed, s.stuck(t), tr.Stuck)
		res.MaxLag = max(res.MaxLag, int64(total))
		res.Backlog = append(res.Backlog, unstuck)
		if unstuck > level {
			res.Backlogged += time.Second
		}
		if unstuck > peak {
			peak, peakAt, drainedAt = unstuck, t, -1
		}
		if peakAt >= 0 && drainedAt < 0 && unstuck <= level {
			drainedAt = t
		}
		if r, ok := a.(TelemetryReader); ok {
			r.Telemetry(s.tel)
		}
		next := a.Step(simStart.Add(time.Duration(t)*time.Second), offsets, s.replicas)
		if r, ok := a.(StallReporter); ok && falselyStalled(r.Stalled(), s, t) {
			res.FalseStalled += time.Second
		}
		if next != s.replicas {
			res.ScaleChanges++
			s.scaled(t, s.replicas, next)
		}
		res.MaxReplicas = max(res.MaxReplicas, s.replicas)
		res.ReplicaSeconds += int64(s.replicas)
	}
	if drainedAt < 0 {
		drainedAt = secs
	}
	if peakAt >= 0 {
		res.Drain = time.Duration(drainedAt-peakAt) * time.Second
	}
	return res
}

// falselyStalled is whether stalled names a partition that is not stuck at second t.
func falselyStalled(stalled []int32, s *world, t int) bool {
	for _, p := range stalled {
		if !s.stuck(t) || int(p) != s.tr.Stuck {
			return true
		}
	}
	return false
}

// observe is what the autoscaler reads after one simulated second: each partition's offsets,
// and the backlog the world has not processed yet, in total and without the stuck partition.
func observe(produced, processed []float64, committed []int64, stuck bool, stuckPartition int) (offsets []scaling.Offsets, total, unstuck float64) {
	offsets = make([]scaling.Offsets, len(produced))
	for p := range offsets {
		newest := int64(produced[p])
		offsets[p] = scaling.Offsets{TopicPartition: scaling.TopicPartition{Topic: "t", Partition: int32(p)},
			Newest: newest, Oldest: 0, Committed: committed[p]}
		backlog := produced[p] - processed[p]
		total += backlog
		if !stuck || p != stuckPartition {
			unstuck += backlog
		}
	}
	return offsets, total, unstuck
}
