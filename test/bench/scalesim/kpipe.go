package scalesim

import (
	"fmt"
	"time"

	"github.com/kpipe-io/kpipe/controllers/scaling"
	"github.com/kpipe-io/kpipe/internal/telemetry"
)

// Kpipe is kpipe's policy as the reconciler applies it: a poll every PollInterval, lag per
// partition with scaling.Lag, stalled partitions with scaling.TrackStalls, produce and
// per-replica rates with scaling.MeasureRates and scaling.Capacity (from the same offsets, one
// poll to the next), the replica count with scaling.Decide.
//
// With Signals it also reads the pods' telemetry as the operator does from the commit metadata
// and DescribeGroups: the measured per-replica capacity (processed rate over busy fraction,
// through scaling.Throughput), the group's members (a group with none is resting, not
// stalled), and slow partitions (old in-flight work, not retrying). Without it, it is the
// policy as it was before the telemetry: the "before" of the benchmark.
type Kpipe struct {
	Params       scaling.Params
	PollInterval time.Duration
	StallPolls   int
	// CommitInterval is the consumers' commit interval, as the reconciler knows the runtime's.
	CommitInterval time.Duration
	// Signals turns on what the pods' telemetry adds, one by one (the zero value: none).
	Signals Signals

	lastPoll   time.Time
	stalls     map[scaling.TopicPartition]scaling.StallState
	history    []scaling.Recommendation
	idleSince  *time.Time
	prev       scaling.Poll
	capacity   scaling.Capacity
	throughput scaling.Throughput
	lastScale  time.Time
	tel        Telemetry
	stalled    []int32
}

// Signals are what the pods' telemetry gives the operator, each of which can be turned on
// alone to see what it changes.
type Signals struct {
	// Capacity: the measured per-replica capacity (and the commit trail left out of the lag).
	Capacity bool
	// Ceiling: the throughput ceiling from capacities measured at several replica counts.
	Ceiling bool
	// Members: the group's members (DescribeGroups): an empty group is resting, not stalled.
	Members bool
	// Slow: slow partitions (old in-flight work, not retrying) are not stalled, and their lag
	// adds no replicas.
	Slow bool
}

// AllSignals turns every signal on.
func AllSignals() Signals { return Signals{Capacity: true, Ceiling: true, Members: true, Slow: true} }

// Telemetry implements TelemetryReader: the latest records, as the next poll would read them.
func (k *Kpipe) Telemetry(t Telemetry) { k.tel = t }

// Stalled implements StallReporter.
func (k *Kpipe) Stalled() []int32 { return k.stalled }

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
	stalled, slow, progress := k.classify(now, lags, current)
	in := scaling.Input{Partitions: int32(len(offsets)), Progress: progress, Current: current}
	for _, pl := range lags {
		switch {
		case stalled[pl.TopicPartition]:
			in.StalledLag += pl.Lag
		case slow[pl.TopicPartition]:
			beyond := scaling.SlowLagBeyondOneReplica(pl.Lag, k.Params.LagPerReplica)
			in.SlowLag += beyond
			in.Lag += pl.Lag - beyond
		default:
			in.Lag += pl.Lag
		}
	}
	skip := map[scaling.TopicPartition]bool{}
	for tp := range stalled {
		skip[tp] = true
	}
	for tp := range slow {
		skip[tp] = true
	}
	poll := scaling.Poll{Offsets: offsets, NewestAt: now, CommittedAt: now, Replicas: current}
	rates := scaling.MeasureRates(k.prev, poll, skip, k.CommitInterval)
	k.capacity = k.capacity.Observe(now, rates.PerReplica)
	if k.Signals.Capacity {
		k.throughput = k.throughput.Observe(now, k.tel.Members, k.measuredCapacity(now))
		in.MeasuredCapacity, in.MaxThroughput = k.throughput.Estimate(now)
		if n := len(k.throughput); !k.Signals.Ceiling && n > 0 {
			in.MeasuredCapacity, in.MaxThroughput = k.throughput[n-1].PerReplica, 0 // the latest, no ceiling
		}
	}
	if observeRates != nil {
		observeRates(now, rates, k.capacity.Estimate(now), in.MeasuredCapacity, in.MaxThroughput)
	}
	in.Params, in.Now, in.IdleSince, in.History = k.Params, now, k.idleSince, k.history
	in.Params.PollInterval = k.PollInterval
	if k.Signals.Capacity {
		in.Params.CommitInterval = k.CommitInterval
	}
	in.ProduceRate, in.ReplicaRate, in.LastScale = rates.Produce, k.capacity.Estimate(now), k.lastScale
	d := scaling.Decide(in)
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

// classify runs the operator's classification (scaling.Classify, as controllers/signals.go
// and observe.go use it) on the simulated telemetry: the stalled partitions (stuck: their lag
// adds no replicas), the slow ones on serial work (their lag goes to SlowLag), and whether any
// committed offset moved. Each partition's record carries its owner's busy share. Without
// Signals.Members the group's state is unknown; without Signals.Slow no record reaches the
// classification, so the offsets alone decide, as before telemetry.
func (k *Kpipe) classify(now time.Time, lags []scaling.PartitionLag, current int32) (stalled, slow map[scaling.TopicPartition]bool, progress bool) {
	consuming := current > 0
	var group scaling.GroupSignals
	if k.Signals.Members {
		group = scaling.GroupSignals{Known: true, Members: int(k.tel.Members)}
		consuming = consuming && k.tel.Members > 0
	}
	st := scaling.TrackStalls(k.stalls, lags, consuming, k.StallPolls)
	k.stalls = st.State
	offsetStalled := map[scaling.TopicPartition]bool{}
	for _, tp := range st.Stalled {
		offsetStalled[tp] = true
	}
	hp := k.healthParams(now)
	stalled, slow = map[scaling.TopicPartition]bool{}, map[scaling.TopicPartition]bool{}
	k.stalled = k.stalled[:0]
	for i, pl := range lags {
		rec := k.record(now, i)
		switch h := scaling.Classify(pl, offsetStalled[pl.TopicPartition], rec, group, hp); {
		case h.Stuck():
			stalled[pl.TopicPartition] = true
			k.stalled = append(k.stalled, pl.Partition)
		case scaling.Serial(h, rec, hp):
			slow[pl.TopicPartition] = true
		}
	}
	return stalled, slow, st.Progress
}

// record is partition i's telemetry record as its owner's pod would write it, nil without
// Signals.Slow (no record reaches the classification then).
func (k *Kpipe) record(now time.Time, i int) *telemetry.Record {
	if !k.Signals.Slow {
		return nil
	}
	return k.written(now, i)
}

// written is partition i's record as its owner's pod writes it: the owner's busy share, the
// partition's part of the owner's rate, and the partition's in-flight work; nil when the
// simulated pods report nothing this second.
func (k *Kpipe) written(now time.Time, i int) *telemetry.Record {
	if i >= len(k.tel.Partitions) || len(k.tel.Replicas) == 0 {
		return nil
	}
	pt := k.tel.Partitions[i]
	owner := k.tel.Replicas[pt.Owner]
	rec := &telemetry.Record{At: now, Replica: fmt.Sprintf("replica-%d", pt.Owner),
		Rate: owner.Rate / float64(max(owner.Partitions, 1)), Busy: owner.Busy,
		InFlight: pt.InFlight, OldestInFlight: pt.OldestInFlight, State: telemetry.StateOK}
	if pt.Retrying {
		rec.State = telemetry.StateRetrying
	}
	return rec
}

// measuredCapacity is the per-replica capacity the operator computes from the records
// (scaling.MeasuredCapacity, as controllers/signals.go calls it), 0 when unknown.
func (k *Kpipe) measuredCapacity(now time.Time) float64 {
	records := map[scaling.TopicPartition]*telemetry.Record{}
	for i := range k.tel.Partitions {
		if rec := k.written(now, i); rec != nil {
			records[scaling.TopicPartition{Topic: "t", Partition: int32(i)}] = rec
		}
	}
	return scaling.MeasuredCapacity(records, k.healthParams(now))
}

// healthParams are the classification's thresholds, as the operator derives them from its
// poll interval.
func (k *Kpipe) healthParams(now time.Time) scaling.HealthParams {
	return scaling.HealthParams{Now: now, StaleAfter: 3 * k.PollInterval, SlowAfter: time.Duration(k.StallPolls) * k.PollInterval,
		SerialAfter: k.PollInterval}
}

// observeRates, when set (by TestDecisionTrace), sees the rates of every kpipe poll.
var observeRates func(now time.Time, r scaling.Rates, estimate, measured, ceiling float64)
