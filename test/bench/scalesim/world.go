package scalesim

import "time"

// world is the simulated pipeline: its partitions' offsets, the replicas and what they do,
// and what the pods would report in their telemetry. One step is one second.
type world struct {
	w  World
	tr Trace

	produced  []float64 // newest offset, fractional
	processed []float64 // processed offset, fractional
	committed []int64   // committed offset: processed as of the last commit, held by unfinished slow messages

	replicas    int32
	pausedUntil int     // eager: consumption stops until this second after a replica change or a rejoin
	coop        *sticky // cooperative (World.Rebalance): the assignment and each partition's pause

	resting   int32 // replicas resting in their idle penalty (out of the group)
	restUntil int   // the second the resting replicas rejoin
	lastWork  int   // the last second something was processed or in flight

	slow     []slowMessage // the slow key's unfinished messages, oldest first
	slowLeft float64       // seconds of work left on the oldest

	tel Telemetry
}

// slowMessage is one message of the slow key: where it sits in its partition, when it came.
type slowMessage struct {
	offset  int64
	arrived int
}

func newWorld(w World, tr Trace) *world {
	n := tr.Partitions
	s := &world{w: w, tr: tr, produced: make([]float64, n), processed: make([]float64, n),
		committed: make([]int64, n), replicas: w.MinReplicas}
	if w.Rebalance != nil {
		s.coop = newSticky(*w.Rebalance, n, w.MinReplicas)
	}
	return s
}

// scaled records a change of the replica count decided at second t.
func (s *world) scaled(t int, from, to int32) {
	switch {
	case s.coop == nil:
		s.pausedUntil = t + 1 + int(s.w.RebalancePause/time.Second)
	case to > from:
		s.coop.scaledUp(t)
	}
	s.replicas = to
}

// members is the replicas the group's assignment is for: those not resting, less (when
// cooperative) new ones that have not joined yet.
func (s *world) members() int32 {
	if s.coop != nil {
		return s.coop.members
	}
	return s.active()
}

// owner is the member that owns partition p.
func (s *world) owner(p int) int {
	if s.coop != nil {
		return s.coop.owner[p]
	}
	return p % int(s.members())
}

// available is the share of second t during which partition p consumes.
func (s *world) available(p, t int) float64 {
	if s.coop != nil {
		return s.coop.available(p, t)
	}
	return 1
}

// stuck is whether the trace's stuck partition processes nothing at second t.
func (s *world) stuck(t int) bool {
	return s.tr.Stuck >= 0 && time.Duration(t)*time.Second >= s.tr.StuckFrom
}

// active is the replicas in the group: those not resting in their idle penalty.
func (s *world) active() int32 { return max(s.replicas-s.resting, 0) }

// step advances the world by second t: commits, traffic, the idle rest, consumption and the
// slow key's serial work, and the telemetry the pods would report for it.
func (s *world) step(t int) {
	if t%max(int(s.w.CommitInterval/time.Second), 1) == 0 {
		s.commit()
	}
	per := s.tr.Traffic(t) / float64(len(s.produced))
	for p := range s.produced {
		s.produced[p] += per
	}
	if sk := s.tr.Slow; sk != nil && t >= int(sk.From/time.Second) && (t-int(sk.From/time.Second))%int(sk.Every/time.Second) == 0 {
		s.slow = append(s.slow, slowMessage{offset: int64(s.produced[sk.Partition]), arrived: t})
		if len(s.slow) == 1 {
			s.slowLeft = sk.Takes.Seconds()
		}
	}
	s.rest(t)
	if s.coop != nil {
		s.coop.sync(t, s.active())
	}
	s.tel = Telemetry{Members: s.members(), Partitions: make([]PartitionTelemetry, len(s.produced))}
	if t >= s.pausedUntil && s.members() > 0 {
		s.consume(t)
	}
	s.partitionTelemetry(t)
}

// commit sets the committed offsets to the processed ones; a partition with an unfinished
// slow message cannot commit past it.
func (s *world) commit() {
	for p := range s.processed {
		s.committed[p] = int64(s.processed[p])
	}
	if len(s.slow) > 0 {
		p := s.tr.Slow.Partition
		s.committed[p] = min(s.committed[p], s.slow[0].offset)
	}
}

// rest is the runtime's idle state machine, for the whole group at once: after IdleWindow
// with nothing processed and nothing in flight the replicas leave the group; after
// IdlePenalty they rejoin, a rebalance like any other. Replicas started meanwhile are in the
// group at once; a scale-down removes those first (the newest pods).
func (s *world) rest(t int) {
	if !s.tr.Rest {
		return
	}
	s.resting = min(s.resting, s.replicas)
	switch {
	case s.resting > 0 && t >= s.restUntil:
		s.resting, s.lastWork = 0, t
		if s.coop != nil {
			s.coop.rejoined(t)
		} else {
			s.pausedUntil = max(s.pausedUntil, t+int(s.w.RebalancePause/time.Second))
		}
	case s.resting == 0 && t-s.lastWork >= int(s.w.IdleWindow/time.Second):
		s.resting, s.restUntil = s.replicas, t+int(s.w.IdlePenalty/time.Second)
	}
}

// consume lets each replica in the group process what it can over the partitions it owns
// (see owner), sharing its capacity among those with messages waiting, for the share of the
// second they are not paused (see available), and records what each would report: the
// messages it processed and its busy fraction (worker time handling or waiting on the sink; a
// worker held by the slow key is busy the whole second).
func (s *world) consume(t int) {
	members := s.members()
	stuck := s.stuck(t)
	owned := make([][]int, members)
	counts := make([]int, members)
	up := make([]float64, members) // the replica's partitions' available share, summed
	for p := range s.produced {
		r := s.owner(p)
		s.tel.Partitions[p].Owner = r
		counts[r]++
		up[r] += s.available(p, t)
		if !stuck || p != s.tr.Stuck {
			owned[r] = append(owned[r], p)
		}
	}
	share := s.w.Rate
	if s.tr.SinkLimit > 0 {
		share = min(share, s.tr.SinkLimit/float64(members))
	}
	if len(s.slow) > 0 {
		s.slowLeft--
		if s.slowLeft <= 0 {
			s.slow = s.slow[1:]
			s.slowLeft = s.tr.Slow.Takes.Seconds()
		}
	}
	for r, ps := range owned {
		rate, held := share*up[r]/float64(max(counts[r], 1)), 0.0
		if len(s.slow) > 0 && s.owner(s.tr.Slow.Partition) == r {
			held = 1 / float64(s.w.Workers)
			rate *= 1 - held
		}
		done := drain(rate, ps, s.produced, s.processed)
		s.tel.Replicas = append(s.tel.Replicas, ReplicaTelemetry{Rate: done, Busy: done/share + held, Partitions: counts[r]})
		if done > 1e-9 || held > 0 {
			s.lastWork = t
		}
	}
}

// drain processes up to rate messages over the partitions ps, sharing it among those with
// messages waiting, and returns how many it processed.
func drain(rate float64, ps []int, produced, processed []float64) float64 {
	left, open := rate, ps
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
	return rate - left
}

// partitionTelemetry is what the pods would report per partition: the slow key's messages in
// flight and the age of the oldest; the stuck partition retrying the message it is stuck on.
func (s *world) partitionTelemetry(t int) {
	if len(s.slow) > 0 {
		pt := &s.tel.Partitions[s.tr.Slow.Partition]
		pt.InFlight, pt.OldestInFlight = len(s.slow), time.Duration(t-s.slow[0].arrived)*time.Second
	}
	if s.stuck(t) {
		pt := &s.tel.Partitions[s.tr.Stuck]
		pt.InFlight, pt.OldestInFlight, pt.Retrying = 1, time.Duration(t)*time.Second-s.tr.StuckFrom, true
	}
}
