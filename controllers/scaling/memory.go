package scaling

import "time"

// Memory is what the operator remembers of one pipeline's scaling between polls: the
// recommendation history (for the stabilization window), the stall tracking, the previous
// poll with the rate samples it measured, and the idle clocks. It observes each poll and
// records each decision; Input hands what it holds to Decide.
//
// After a restart or a change of leader a Memory starts empty: the history is seeded with the
// current replica count (so nothing scales down at once), stall counts start from zero, and
// the idle clocks are taken from the status (see Input).
//
// A Memory is not safe for concurrent use; the reconciler works on one pipeline at a time.
type Memory struct {
	history []Recommendation

	stall     map[TopicPartition]StallState
	stalled   []TopicPartition
	progress  bool
	trackedAt time.Time

	lastPoll Poll     // the previous poll the rates were measured against
	capacity Capacity // per-replica rate samples
	// throughput is the capacity the pods measured of themselves, per replica count: it
	// gives Input.MeasuredCapacity and the throughput ceiling (Input.MaxThroughput).
	throughput Throughput
	produce    float64 // produce rate of the last measured interval

	idleSince *time.Time
	zeroSince *time.Time // when the policy scaled to zero for idleness
}

// Observation is one successful poll as the reconciler saw it.
type Observation struct {
	Now time.Time
	// PollInterval is the pipeline's poll interval: stall counts advance, and rates are
	// measured, at most once per half of it, so extra reconciles do not count as polls.
	PollInterval time.Duration
	// Poll holds the offsets, when they were read, and the replicas that may have consumed.
	Poll Poll
	// Lags are the partitions' lags (see Lag).
	Lags []PartitionLag
	// Consuming is true when ready replicas run: a partition without consumers cannot stall.
	Consuming bool
	// StallPolls is the stall threshold (see TrackStalls).
	StallPolls int
	// CommitInterval is how often the consumers commit (see MeasureRates).
	CommitInterval time.Duration
}

// Observe records one poll: it advances the stall tracking, then measures the produce rate
// and a per-replica rate sample against the previous poll, over the partitions that are not
// stalled. A shared read that was not refreshed since the previous poll measures nothing (no
// time between the reads).
func (m *Memory) Observe(o Observation) {
	if m.trackedAt.IsZero() || o.Now.Sub(m.trackedAt) >= o.PollInterval/2 {
		s := TrackStalls(m.stall, o.Lags, o.Consuming, o.StallPolls)
		m.stall, m.stalled, m.progress, m.trackedAt = s.State, s.Stalled, s.Progress, o.Now
	}
	cur := o.Poll
	if m.lastPoll.NewestAt.IsZero() {
		m.lastPoll = cur
		return
	}
	// Extra reconciles (a Deployment update) and reads not refreshed since the previous poll
	// are not polls: commits land once a second, so a short interval is mostly noise. Keep
	// the previous poll, and remember that these replicas ran meanwhile.
	rates := MeasureRates(m.lastPoll, cur, m.StalledSet(), o.CommitInterval)
	if !rates.OK || cur.CommittedAt.Sub(m.lastPoll.CommittedAt) < o.PollInterval/2 {
		m.lastPoll.Replicas = max(m.lastPoll.Replicas, cur.Replicas)
		return
	}
	m.capacity = m.capacity.Observe(o.Now, rates.PerReplica)
	m.produce = rates.Produce
	m.lastPoll = cur
}

// Stalled lists the stalled partitions of the last tracked poll.
func (m *Memory) Stalled() []TopicPartition { return m.stalled }

// StalledSet is Stalled as a set.
func (m *Memory) StalledSet() map[TopicPartition]bool {
	set := make(map[TopicPartition]bool, len(m.stalled))
	for _, tp := range m.stalled {
		set[tp] = true
	}
	return set
}

// Progress is true when some committed offset moved at the last tracked poll.
func (m *Memory) Progress() bool { return m.progress }

// Clocks are a pipeline's idle clocks (see Input.IdleSince and Input.ZeroSince).
type Clocks struct {
	IdleSince *time.Time
	ZeroSince *time.Time
}

// Input completes in with what the memory holds: the recommendation history (the current
// count when there is none and replicas run), commit progress, the produce rate and the
// per-replica estimate at in.Now, and the idle clocks. A process that has not yet applied the
// pipeline's Deployment (a restart, a new leader) passes the clocks it read from the status as
// restored; otherwise restored is nil and the memory's own clocks are used. The memory is not
// changed.
func (m *Memory) Input(in Input, restored *Clocks) Input {
	in.History = m.history
	if in.History == nil && in.Current > 0 {
		// No memory of earlier polls: hold the current count for one stabilization window
		// rather than scaling down at once.
		in.History = []Recommendation{{Time: in.Now, Replicas: in.Current}}
	}
	in.Progress = m.progress
	in.ProduceRate = m.produce
	in.ReplicaRate = m.capacity.Estimate(in.Now)
	in.MeasuredCapacity, in.MaxThroughput = m.throughput.Estimate(in.Now)
	if restored != nil {
		in.IdleSince, in.ZeroSince = restored.IdleSince, restored.ZeroSince
	} else {
		in.IdleSince, in.ZeroSince = m.idleSince, m.zeroSince
	}
	return in
}

// ObserveCapacity remembers the per-replica capacity the pods reported at now, measured
// while replicas ran (the group's members); a capacity of 0 (no fresh record) is no sample.
func (m *Memory) ObserveCapacity(now time.Time, replicas int32, perReplica float64) {
	if perReplica > 0 && replicas > 0 {
		m.throughput = m.throughput.Observe(now, replicas, perReplica)
	}
}

// Record remembers the decision made at now: its history and idle clock, the replicas that
// may consume until the next poll (the old count while its pods stop, the new one once they
// start), and when the pipeline went to zero for idleness.
func (m *Memory) Record(now time.Time, d Decision) {
	m.history = d.History
	m.idleSince = d.IdleSince
	m.lastPoll.Replicas = max(m.lastPoll.Replicas, d.Replicas)
	switch {
	case d.Replicas > 0:
		m.zeroSince = nil
	case d.Reason == ReasonIdleToZero:
		m.zeroSince = &now
	}
}

// Override records that something other than the policy set the replicas (the pipeline is
// suspended, or in Manual mode): the recommendation history and the scale-to-zero clock no
// longer apply.
func (m *Memory) Override() {
	m.history, m.zeroSince = nil, nil
}
