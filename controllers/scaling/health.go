package scaling

import (
	"time"

	"github.com/kpipe-io/kpipe/internal/telemetry"
)

// Health is what a partition's consumer is doing, as the offsets, the group's state and the
// pod's telemetry record tell together.
type Health string

const (
	// HealthConsuming means the partition is worked off as usual, or has nothing to work off.
	HealthConsuming Health = "Consuming"
	// HealthRebalancing means the group is between generations; commits wait for the new one.
	HealthRebalancing Health = "Rebalancing"
	// HealthResting means the group has no members (pods resting in their idle penalty, or none
	// running): nobody is there to be stuck.
	HealthResting Health = "Resting"
	// HealthSlow means the work moves, slowly: old messages in flight while commits still move,
	// or a committed offset that stood still while the workers are busy (a long handler).
	// Its lag keeps counting for scaling.
	HealthSlow Health = "Slow"
	// HealthRetrying means the committed offset stood still and the pod reports the oldest
	// message between retry attempts.
	HealthRetrying Health = "Retrying"
	// HealthDeadLetterUnwritable means the committed offset stood still and the pod reports a
	// message it can neither handle nor write to the dead-letter topic.
	HealthDeadLetterUnwritable Health = "DeadLetterUnwritable"
	// HealthStuck means the committed offset stood still and the pod's workers are not busy, or
	// no pod says anything (no telemetry record: the operator's estimate from offsets alone).
	HealthStuck Health = "Stuck"
)

// Stuck reports whether more replicas will not move the partition: its lag is left out of
// scale-up and the pipeline is Stalled.
func (h Health) Stuck() bool {
	return h == HealthRetrying || h == HealthDeadLetterUnwritable || h == HealthStuck
}

// GroupSignals is what DescribeGroups said of the group; Known is false when it did not.
type GroupSignals struct {
	Known       bool
	Rebalancing bool
	Members     int
}

// HealthParams tune Classify.
type HealthParams struct {
	Now time.Time
	// StaleAfter: a record written longer ago than this is ignored (the pod that wrote it
	// stopped refreshing it), as if there were none.
	StaleAfter time.Duration
	// SlowAfter: a message in flight for longer than this makes the partition Slow.
	SlowAfter time.Duration
	// SerialAfter: a message retried (or blocked on the dead letter) for longer than this
	// makes the partition's lag serial before the offsets call it stalled (see Serial).
	SerialAfter time.Duration
}

// busyFloor is the busy fraction below which a replica's workers count as idle: a worker
// pool that spends under 5% of its time in handlers is waiting for something else.
const busyFloor = 0.05

// SlowLagBeyondOneReplica is the part of a slow partition's lag that more replicas cannot
// work off: one replica is the most a partition gets, so its lag counts for scaling up to one
// replica's worth (lagPerReplica) and the rest goes to Input.SlowLag, which keeps the pipeline
// awake but adds no replica. A first version split slow partitions by their replica's busy
// share (saturated: all the lag counts; workers to spare: none does); as the replicas changed
// so did the busy share, and the slow-handler trace of the simulator flapped 12 times.
func SlowLagBeyondOneReplica(lag, lagPerReplica int64) int64 {
	return lag - min(lag, max(lagPerReplica, 0))
}

// Serial reports whether more replicas cannot work off the lag of a partition that is not
// stuck: a slow one's, or one whose pod reports its oldest message retried or blocked on the
// dead letter for longer than SerialAfter, while its committed offset has not stood still
// for the stall threshold yet. Its lag then counts up to one replica's worth
// (SlowLagBeyondOneReplica), at once; from the offsets alone it would drive scaling until
// the stall threshold (six polls by default), and the replicas added for it would wait out the
// scale-down window. A shorter retry (a flaky sink) leaves the lag counting as usual.
func Serial(h Health, rec *telemetry.Record, hp HealthParams) bool {
	if h == HealthSlow {
		return true
	}
	rec = hp.Fresh(rec)
	return h == HealthConsuming && rec != nil && rec.State != telemetry.StateOK && rec.OldestInFlight > hp.SerialAfter
}

// Fresh returns the record when it is recent enough to trust, nil otherwise.
func (hp HealthParams) Fresh(r *telemetry.Record) *telemetry.Record {
	if r == nil || (hp.StaleAfter > 0 && hp.Now.Sub(r.At) > hp.StaleAfter) {
		return nil
	}
	return r
}

// Classify tells what one partition's consumer is doing. offsetStalled is the operator's own
// observation (TrackStalls): lag and the same committed offset for the stall threshold. Only
// such a partition can be stuck, so a record caught between two retry attempts never flips
// the status by itself; the record then says why (retrying, dead letter, busy or not). A
// group without members is resting whatever the offsets say; one mid-rebalance is
// rebalancing. Without a fresh record the offsets alone decide, as before telemetry.
func Classify(pl PartitionLag, offsetStalled bool, rec *telemetry.Record, g GroupSignals, hp HealthParams) Health {
	rec = hp.Fresh(rec)
	switch {
	case g.Known && g.Members == 0:
		return HealthResting
	case g.Known && g.Rebalancing:
		return HealthRebalancing
	case offsetStalled && rec == nil:
		return HealthStuck
	case offsetStalled:
		return stalledCause(rec)
	case rec != nil && pl.Lag > 0 && hp.SlowAfter > 0 && rec.OldestInFlight > hp.SlowAfter:
		return HealthSlow
	}
	return HealthConsuming
}

// stalledCause is why a partition whose committed offset stood still did, by its record.
func stalledCause(rec *telemetry.Record) Health {
	switch {
	case rec.State == telemetry.StateDeadLetterBlocked:
		return HealthDeadLetterUnwritable
	case rec.State == telemetry.StateRetrying:
		return HealthRetrying
	case rec.Busy >= busyFloor || rec.Rate > 0:
		return HealthSlow
	}
	return HealthStuck
}

// MeasuredCapacity is the messages per second one replica can process, from the fresh
// records: for each replica, the sum of the rates of its partitions divided by its workers'
// busy fraction, averaged over the replicas. A replica whose workers were (almost) never busy
// says nothing about its capacity and is left out, and so is one with a slow partition: a
// worker held for minutes by one message counts as busy while it finishes nothing, so the
// replica's rate / busy would read low, and lower the more replicas share the other work,
// which scaling.Throughput could take for a throughput ceiling. 0 means unknown.
//
// Only the records of a replica's latest commit count (latestCommits): a partition it gave
// up in a rebalance keeps its last record until the new owner commits, and that rate, added
// to what the replica now processes on the partitions it kept, read 113 msg/s for a replica
// that can do at most 80 (test/e2e, "a lag time target on real pods").
func MeasuredCapacity(records map[TopicPartition]*telemetry.Record, hp HealthParams) float64 {
	type replica struct {
		rate, busy float64
		slow       bool
	}
	byReplica := map[string]*replica{}
	latest := latestCommits(records, hp)
	for _, r := range records {
		if r == nil || r.Replica == "" {
			continue
		}
		// latest holds fresh times only: a record written at one is fresh too.
		if at, ok := latest[r.Replica]; !ok || !r.At.Equal(at) {
			continue
		}
		rp := byReplica[r.Replica]
		if rp == nil {
			rp = &replica{}
			byReplica[r.Replica] = rp
		}
		rp.rate += r.Rate
		rp.busy = max(rp.busy, r.Busy) // one pool per replica: its partitions report the same
		rp.slow = rp.slow || (hp.SlowAfter > 0 && r.OldestInFlight > hp.SlowAfter)
	}
	var sum float64
	n := 0
	for _, rp := range byReplica {
		if rp.busy < busyFloor || rp.rate <= 0 || rp.slow {
			continue
		}
		sum += rp.rate / rp.busy
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// latestCommits is when each replica's newest fresh record was written. A replica writes the
// records of all the partitions it owns at every commit with one time (runtime/telemetry.go),
// so the records with that time are the partitions it owns now.
func latestCommits(records map[TopicPartition]*telemetry.Record, hp HealthParams) map[string]time.Time {
	out := map[string]time.Time{}
	for _, r := range records {
		if r = hp.Fresh(r); r != nil && r.At.After(out[r.Replica]) {
			out[r.Replica] = r.At
		}
	}
	return out
}
