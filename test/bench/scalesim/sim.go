// Package scalesim replays traffic traces through two autoscalers — kpipe's scaling policy
// (the real pure functions of controllers/scaling) and a model of KEDA's Kafka scaler driving
// the Kubernetes HPA with its defaults — and measures what each costs and achieves.
//
// The world is simulated one second at a time. The trace's traffic is spread evenly over the
// partitions (the stuck one included: producers do not know it is stuck), each replica processes
// Rate messages per second over the partitions it owns (assigned round-robin, as balancing
// assignors do; a replica's capacity goes to its partitions that have messages waiting), and a
// stuck partition processes nothing. Committed offsets are the processed positions as of the
// last commit: like kpipe's runtime, consumers commit every CommitInterval (1 s), so the
// offsets read in a second show what was processed up to the start of that second. Every
// change of the replica count pauses all consumption for RebalancePause (pods starting and the
// group rebalancing), for both autoscalers alike.
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
}

// World are the simulation's constants, the same for both autoscalers.
type World struct {
	// Rate is what one replica processes per second over the partitions it owns.
	Rate float64
	// RebalancePause is how long consumption stops after a replica count change.
	RebalancePause time.Duration
	// MinReplicas and MaxReplicas bound both autoscalers.
	MinReplicas, MaxReplicas int32
	// LagPerReplica is kpipe's lagPerReplica and KEDA's lagThreshold.
	LagPerReplica int64
	// CommitInterval is how often consumers commit what they processed (whole seconds; zero
	// commits every second).
	CommitInterval time.Duration
}

// Autoscaler decides replica counts. Step is called every simulated second with the offsets
// of that second and the current replica count, and returns the replica count to run.
type Autoscaler interface {
	Step(now time.Time, offsets []scaling.Offsets, current int32) int32
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
}

// simStart is the simulated time of second 0.
var simStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Run replays tr through a.
func Run(w World, tr Trace, a Autoscaler) Result {
	start := simStart
	n := tr.Partitions
	produced := make([]float64, n)  // newest offset, fractional
	processed := make([]float64, n) // processed offset, fractional
	committed := make([]int64, n)   // committed offset: processed as of the last commit
	commitEvery := max(int(w.CommitInterval/time.Second), 1)
	replicas := w.MinReplicas
	var res Result
	pausedUntil := -1
	var peak int64
	peakAt, drainedAt := -1, -1
	secs := int(tr.Duration / time.Second)
	for t := range secs {
		now := start.Add(time.Duration(t) * time.Second)
		stuck := tr.Stuck >= 0 && time.Duration(t)*time.Second >= tr.StuckFrom
		if t%commitEvery == 0 {
			for p := range processed {
				committed[p] = int64(processed[p])
			}
		}
		per := tr.Traffic(t) / float64(n)
		for p := range produced {
			produced[p] += per
		}
		if t >= pausedUntil {
			consume(w.Rate, replicas, produced, processed, stuck, tr.Stuck)
		}
		offsets, total, unstuck := observe(produced, processed, committed, stuck, tr.Stuck)
		res.MaxLag = max(res.MaxLag, total)
		if unstuck > w.LagPerReplica {
			res.Backlogged += time.Second
		}
		if unstuck > peak {
			peak, peakAt, drainedAt = unstuck, t, -1
		}
		if peakAt >= 0 && drainedAt < 0 && unstuck <= w.LagPerReplica {
			drainedAt = t
		}
		next := a.Step(now, offsets, replicas)
		if next != replicas {
			res.ScaleChanges++
			pausedUntil = t + 1 + int(w.RebalancePause/time.Second)
			replicas = next
		}
		res.MaxReplicas = max(res.MaxReplicas, replicas)
		res.ReplicaSeconds += int64(replicas)
	}
	if drainedAt < 0 {
		drainedAt = secs
	}
	if peakAt >= 0 {
		res.Drain = time.Duration(drainedAt-peakAt) * time.Second
	}
	return res
}

// observe is what the autoscaler reads after one simulated second: each partition's offsets,
// and the backlog the world has not processed yet, in total and without the stuck partition.
func observe(produced, processed []float64, committed []int64, stuck bool, stuckPartition int) (offsets []scaling.Offsets, total, unstuck int64) {
	offsets = make([]scaling.Offsets, len(produced))
	for p := range offsets {
		newest := int64(produced[p])
		offsets[p] = scaling.Offsets{TopicPartition: scaling.TopicPartition{Topic: "t", Partition: int32(p)},
			Newest: newest, Oldest: 0, Committed: committed[p]}
		backlog := newest - int64(processed[p])
		total += backlog
		if !stuck || p != stuckPartition {
			unstuck += backlog
		}
	}
	return offsets, total, unstuck
}

// consume lets each replica process up to rate messages over the partitions it owns
// (partition p belongs to replica p mod replicas), sharing its capacity among the partitions
// with messages waiting. The stuck partition processes nothing.
func consume(rate float64, replicas int32, produced, processed []float64, stuck bool, stuckPartition int) {
	if replicas <= 0 {
		return
	}
	owned := make([][]int, replicas)
	for p := range produced {
		if stuck && p == stuckPartition {
			continue
		}
		r := p % int(replicas)
		owned[r] = append(owned[r], p)
	}
	for _, ps := range owned {
		left := rate
		open := ps
		for left > 1e-9 && len(open) > 0 {
			share := left / float64(len(open))
			var still []int
			for _, p := range open {
				take := min(share, produced[p]-processed[p])
				processed[p] += take
				left -= take
				if produced[p]-processed[p] > 1e-9 {
					still = append(still, p)
				}
			}
			open = still
		}
	}
}

// Kpipe is kpipe's policy as the reconciler applies it: a poll every PollInterval, lag per
// partition with scaling.Lag, stalled partitions with scaling.TrackStalls, produce and
// per-replica rates with scaling.MeasureRates and scaling.Capacity (from the same offsets, one
// poll to the next), the replica count with scaling.Decide.
type Kpipe struct {
	Params       scaling.Params
	PollInterval time.Duration
	StallPolls   int
	// CommitInterval is the consumers' commit interval, as the reconciler knows the runtime's.
	CommitInterval time.Duration

	lastPoll  time.Time
	stalls    map[scaling.TopicPartition]scaling.StallState
	history   []scaling.Recommendation
	idleSince *time.Time
	prev      scaling.Poll
	capacity  scaling.Capacity
	lastScale time.Time
}

// Step implements Autoscaler.
func (k *Kpipe) Step(now time.Time, offsets []scaling.Offsets, current int32) int32 {
	if !k.lastPoll.IsZero() && now.Sub(k.lastPoll) < k.PollInterval {
		return current
	}
	k.lastPoll = now
	lags := make([]scaling.PartitionLag, len(offsets))
	for i, o := range offsets {
		lags[i] = scaling.Lag(o, true)
	}
	st := scaling.TrackStalls(k.stalls, lags, current > 0, k.StallPolls)
	k.stalls = st.State
	stalled := map[scaling.TopicPartition]bool{}
	for _, tp := range st.Stalled {
		stalled[tp] = true
	}
	var lag, stalledLag int64
	for _, pl := range lags {
		if stalled[pl.TopicPartition] {
			stalledLag += pl.Lag
		} else {
			lag += pl.Lag
		}
	}
	poll := scaling.Poll{Offsets: offsets, NewestAt: now, CommittedAt: now, Replicas: current}
	rates := scaling.MeasureRates(k.prev, poll, stalled, k.CommitInterval)
	k.capacity = k.capacity.Observe(now, rates.PerReplica)
	if observeRates != nil {
		observeRates(now, rates, k.capacity.Estimate(now))
	}
	params := k.Params
	params.PollInterval = k.PollInterval
	d := scaling.Decide(scaling.Input{
		Params: params, Now: now, Partitions: int32(len(offsets)), Lag: lag, StalledLag: stalledLag,
		Progress: st.Progress, Current: current, IdleSince: k.idleSince, History: k.history,
		ProduceRate: rates.Produce, ReplicaRate: k.capacity.Estimate(now), LastScale: k.lastScale,
	})
	k.history, k.idleSince = d.History, d.IdleSince
	if d.Replicas != current {
		k.lastScale = now
	}
	// The replicas that may consume until the next poll: the old ones while they stop, the
	// new ones once they start.
	poll.Replicas = max(current, d.Replicas)
	k.prev = poll
	return d.Replicas
}

// observeRates, when set (by TestDecisionTrace), sees the rates of every kpipe poll.
var observeRates func(now time.Time, r scaling.Rates, estimate float64)
