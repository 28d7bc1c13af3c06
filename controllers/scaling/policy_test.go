package scaling

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time { t := t0.Add(d); return &t }

func params(mut ...func(*Params)) Params {
	p := Params{
		MinReplicas: 0, MaxReplicas: 10, LagPerReplica: 1000, ActivationLag: 0,
		IdleWindow: time.Minute, IdlePenalty: 5 * time.Minute, ScaleDownStabilization: 5 * time.Minute,
		PollInterval: 10 * time.Second,
	}
	for _, m := range mut {
		m(&p)
	}
	return p
}

func hist(pairs ...any) []Recommendation {
	var h []Recommendation
	for i := 0; i < len(pairs); i += 2 {
		h = append(h, Recommendation{Time: t0.Add(pairs[i].(time.Duration)), Replicas: int32(pairs[i+1].(int))})
	}
	return h
}

func TestDecide(t *testing.T) {
	minR := func(n int32) func(*Params) { return func(p *Params) { p.MinReplicas = n } }
	maxR := func(n int32) func(*Params) { return func(p *Params) { p.MaxReplicas = n } }
	per := func(n int64) func(*Params) { return func(p *Params) { p.LagPerReplica = n } }
	act := func(n int64) func(*Params) { return func(p *Params) { p.ActivationLag = n } }
	lagTime := func(d time.Duration) func(*Params) { return func(p *Params) { p.LagTimeTarget = d } }

	cases := []struct {
		name       string
		in         Input
		want       int32
		wantRec    int32
		wantReason string
		wantIdle   bool
	}{
		// ceil(lag / lagPerReplica) within bounds.
		{"lag under one replica's share wants one", Input{Params: params(), Partitions: 12, Lag: 1, Current: 1, Progress: true}, 1, 1, ReasonSteady, false},
		{"ceil rounds up", Input{Params: params(), Partitions: 12, Lag: 2001, Current: 1, Progress: true}, 3, 3, ReasonScaledUp, false},
		{"exact multiple", Input{Params: params(), Partitions: 12, Lag: 4000, Current: 1}, 4, 4, ReasonScaledUp, false},
		{"scale-up is immediate despite a lower history", Input{Params: params(), Partitions: 12, Lag: 6000, Current: 2, History: hist(-time.Minute, 2)}, 6, 6, ReasonScaledUp, false},
		{"maxReplicas caps", Input{Params: params(maxR(4)), Partitions: 12, Lag: 50_000, Current: 1}, 4, 4, ReasonScaledUp, false},
		{"minReplicas floors", Input{Params: params(minR(3)), Partitions: 12, Lag: 10, Current: 3, Progress: true}, 3, 3, ReasonSteady, false},
		{"huge lag does not overflow", Input{Params: params(per(1)), Partitions: 8, Lag: 1 << 62, Current: 1}, 8, 8, ReasonScaledUp, false},
		// The partition cap (KEDA: replicas beyond the partitions idle).
		{"partition cap below maxReplicas", Input{Params: params(maxR(50)), Partitions: 6, Lag: 100_000, Current: 2}, 6, 6, ReasonScaledUp, false},
		{"minReplicas above the partitions is honoured as standbys", Input{Params: params(minR(4), maxR(8)), Partitions: 2, Lag: 100_000, Current: 4}, 4, 4, ReasonSteady, false},
		// Uneven distribution: only counts that lower the busiest replica's partitions.
		{"10 partitions: 7 rounds down to 5", Input{Params: params(maxR(20)), Partitions: 10, Lag: 7000, Current: 1}, 5, 5, ReasonScaledUp, false},
		{"10 partitions: 9 rounds down to 5", Input{Params: params(maxR(20)), Partitions: 10, Lag: 9000, Current: 1}, 5, 5, ReasonScaledUp, false},
		{"10 partitions: 3 stays 3", Input{Params: params(maxR(20)), Partitions: 10, Lag: 2500, Current: 1}, 3, 3, ReasonScaledUp, false},
		{"10 partitions: 11 caps to 10", Input{Params: params(maxR(20)), Partitions: 10, Lag: 11_000, Current: 1}, 10, 10, ReasonScaledUp, false},
		{"12 partitions: 7 rounds down to 6", Input{Params: params(maxR(20)), Partitions: 12, Lag: 7000, Current: 1}, 6, 6, ReasonScaledUp, false},
		{"96 partitions: 40 rounds down to 32", Input{Params: params(maxR(100)), Partitions: 96, Lag: 40_000, Current: 1}, 32, 32, ReasonScaledUp, false},
		{"rounding stops at minReplicas", Input{Params: params(minR(7), maxR(20)), Partitions: 10, Lag: 8000, Current: 7}, 7, 7, ReasonSteady, false},
		// Scale-down stabilization: the highest recommendation within the window wins.
		{"scale-down held by a recent high recommendation", Input{Params: params(), Partitions: 12, Lag: 1000, Current: 6, History: hist(-time.Minute, 6)}, 6, 1, ReasonStabilizing, false},
		{"scale-down to the highest within a window that rose", Input{Params: params(), Partitions: 12, Lag: 1000, Current: 6, History: hist(-6*time.Minute, 6, -3*time.Minute, 2, -2*time.Minute, 4)}, 4, 1, ReasonScaledDown, false},
		{"a scale-down goes as far as the window allows one poll later", Input{Params: params(), Partitions: 12, Lag: 1000, Current: 6, History: hist(-6*time.Minute, 6, -295*time.Second, 4, -3*time.Minute, 1, -2*time.Minute, 3)}, 3, 1, ReasonScaledDown, false},
		{"a drained backlog's tail goes straight to the recent level", Input{Params: params(maxR(12)), Partitions: 12, Lag: 1000, Current: 12, History: hist(-301*time.Second, 12, -290*time.Second, 6, -280*time.Second, 5, -270*time.Second, 3, -3*time.Minute, 1, -2*time.Minute, 2, -15*time.Second, 2, -5*time.Second, 1)}, 2, 1, ReasonScaledDown, false},
		{"a window that only fell goes straight to the latest", Input{Params: params(), Partitions: 12, Lag: 1000, Current: 6, History: hist(-6*time.Minute, 6, -2*time.Minute, 4, -30*time.Second, 1)}, 1, 1, ReasonScaledDown, false},
		{"an old recommendation holds replicas but adds none", Input{Params: params(), Partitions: 12, Lag: 1000, Current: 3, History: hist(-3*time.Minute, 1, -2*time.Minute, 6)}, 3, 1, ReasonStabilizing, false},
		{"scale-down once the window has passed", Input{Params: params(), Partitions: 12, Lag: 1000, Current: 6, History: hist(-6*time.Minute, 6)}, 1, 1, ReasonScaledDown, false},
		{"zero stabilization scales down at once", Input{Params: params(func(p *Params) { p.ScaleDownStabilization = 0 }), Partitions: 12, Lag: 1000, Current: 6, History: hist(-time.Second, 6)}, 1, 1, ReasonScaledDown, false},
		// Idle and scale to zero.
		{"no lag but commits progressing keeps one replica", Input{Params: params(), Partitions: 4, Lag: 0, Progress: true, Current: 1}, 1, 1, ReasonSteady, false},
		{"idle within the window keeps one replica", Input{Params: params(), Partitions: 4, Current: 1, IdleSince: at(-30 * time.Second)}, 1, 1, ReasonSteady, true},
		{"idle for the window scales to zero", Input{Params: params(), Partitions: 4, Current: 1, IdleSince: at(-time.Minute)}, 0, 0, ReasonIdleToZero, true},
		{"idle to zero skips the stabilization window", Input{Params: params(), Partitions: 4, Current: 3, IdleSince: at(-2 * time.Minute), History: hist(-time.Second, 3)}, 0, 0, ReasonIdleToZero, true},
		{"minReplicas 1 never goes to zero", Input{Params: params(minR(1)), Partitions: 4, Current: 1, IdleSince: at(-time.Hour)}, 1, 1, ReasonSteady, true},
		{"first idle poll starts the idle clock", Input{Params: params(), Partitions: 4, Current: 1}, 1, 1, ReasonSteady, true},
		// At zero: penalty, activation.
		{"penalty holds zero despite lag", Input{Params: params(), Partitions: 4, Lag: 5000, Current: 0, ZeroSince: at(-time.Minute)}, 0, 0, ReasonIdlePenalty, true},
		{"after the penalty lag wakes it", Input{Params: params(), Partitions: 4, Lag: 1500, Current: 0, ZeroSince: at(-5 * time.Minute)}, 2, 2, ReasonActivated, false},
		{"lag at activationLag stays at zero", Input{Params: params(act(100)), Partitions: 4, Lag: 100, Current: 0}, 0, 0, ReasonBelowActivation, true},
		{"lag above activationLag wakes", Input{Params: params(act(100)), Partitions: 4, Lag: 101, Current: 0}, 1, 1, ReasonActivated, false},
		{"no lag at zero stays at zero", Input{Params: params(), Partitions: 4, Current: 0}, 0, 0, ReasonBelowActivation, true},
		{"waking applies the partition cap", Input{Params: params(), Partitions: 3, Lag: 1_000_000, Current: 0}, 3, 3, ReasonActivated, false},
		// A group without commits under initialOffset Latest needs a running consumer.
		{"no commit with Latest keeps one replica despite idling", Input{Params: params(), Partitions: 4, Current: 1, NeedsConsumer: true, IdleSince: at(-time.Hour)}, 1, 1, ReasonSteady, true},
		{"no commit with Latest wakes one replica from zero", Input{Params: params(act(100)), Partitions: 4, Current: 0, NeedsConsumer: true}, 1, 1, ReasonActivated, true},
		{"no commit with Latest never pushes up", Input{Params: params(), Partitions: 32, Current: 1, NeedsConsumer: true}, 1, 1, ReasonSteady, true},
		{"no commit with Latest waits for the penalty", Input{Params: params(), Partitions: 4, Current: 0, NeedsConsumer: true, ZeroSince: at(-time.Second)}, 0, 0, ReasonIdlePenalty, true},
		{"zero with minReplicas above zero scales up to min", Input{Params: params(minR(2)), Partitions: 4, Current: 0}, 2, 2, ReasonScaledUp, true},
		// Stalled partitions (KEDA: persistent lag pushes to the maximum).
		{"stalled lag alone does not scale up", Input{Params: params(), Partitions: 12, StalledLag: 50_000, Current: 2}, 1, 1, ReasonScaledDown, false},
		{"stalled lag held by stabilization", Input{Params: params(), Partitions: 12, StalledLag: 50_000, Current: 2, History: hist(-time.Second, 2)}, 2, 1, ReasonStabilizing, false},
		{"stalled lag keeps the pipeline awake", Input{Params: params(), Partitions: 12, StalledLag: 10, Current: 1, IdleSince: at(-time.Hour)}, 1, 1, ReasonSteady, false},
		{"healthy lag still scales beside a stalled partition", Input{Params: params(), Partitions: 12, Lag: 3000, StalledLag: 90_000, Current: 1}, 3, 3, ReasonScaledUp, false},
		// Rate floor: a scale-down keeps the replicas that keep up with the produce rate.
		{"rate floor holds a scale-down at what keeps up", Input{Params: params(maxR(12)), Partitions: 12, Lag: 500, Progress: true, Current: 12, ProduceRate: 3000, ReplicaRate: 1000}, 3, 3, ReasonScaledDown, false},
		{"rate floor holds the current count", Input{Params: params(maxR(12)), Partitions: 12, Lag: 500, Progress: true, Current: 3, ProduceRate: 3000, ReplicaRate: 1000}, 3, 3, ReasonSteady, false},
		{"rate floor never adds replicas", Input{Params: params(maxR(12)), Partitions: 12, Lag: 500, Progress: true, Current: 2, ProduceRate: 6000, ReplicaRate: 1000}, 2, 2, ReasonSteady, false},
		{"rate floor is not remembered by stabilization", Input{Params: params(maxR(12)), Partitions: 12, Lag: 100, Progress: true, Current: 6, ProduceRate: 600, ReplicaRate: 1000, History: hist(-2*time.Minute, 1, -time.Minute, 2)}, 2, 1, ReasonScaledDown, false},
		{"rate floor counts the busiest replica's partitions", Input{Params: params(maxR(20)), Partitions: 10, Lag: 100, Progress: true, Current: 10, ProduceRate: 3000, ReplicaRate: 1000}, 4, 4, ReasonScaledDown, false},
		{"rate floor with an unknown per-replica rate does nothing", Input{Params: params(maxR(12)), Partitions: 12, Lag: 100, Progress: true, Current: 6, ProduceRate: 6000}, 1, 1, ReasonScaledDown, false},
		{"rate floor does not keep an idle pipeline up", Input{Params: params(), Partitions: 4, Current: 1, ProduceRate: 100, ReplicaRate: 1000, IdleSince: at(-time.Minute)}, 0, 0, ReasonIdleToZero, true},
		// Scale-up to keep up: rounding must not leave a scale-up as busy as now.
		{"lag above the share and a produce rate beyond the replicas scale up to keep up", Input{Params: params(maxR(12)), Partitions: 12, Lag: 6800, Progress: true, Current: 6, ProduceRate: 6072, ReplicaRate: 1000}, 12, 12, ReasonScaledUp, false},
		{"the same lag while the replicas keep up rounds down as before", Input{Params: params(maxR(12)), Partitions: 12, Lag: 6800, Progress: true, Current: 6, ProduceRate: 5900, ReplicaRate: 1000}, 6, 6, ReasonSteady, false},
		{"a produce rate beyond the replicas without lag above their share adds nothing", Input{Params: params(maxR(12)), Partitions: 12, Lag: 5000, Progress: true, Current: 6, ProduceRate: 7000, ReplicaRate: 1000}, 6, 6, ReasonSteady, false},
		// Settling: lag the rebalance after a scale change explains does not add replicas.
		{"settling holds lag the rebalance explains", Input{Params: params(maxR(12)), Partitions: 12, Lag: 2004, Progress: true, Current: 1, ProduceRate: 600, ReplicaRate: 675, LastScale: t0.Add(-10 * time.Second)}, 1, 1, ReasonSettling, false},
		{"settling ends after two poll intervals", Input{Params: params(maxR(12)), Partitions: 12, Lag: 2004, Progress: true, Current: 1, ProduceRate: 600, ReplicaRate: 675, LastScale: t0.Add(-20 * time.Second)}, 3, 3, ReasonScaledUp, false},
		{"settling does not hold replicas that cannot keep up", Input{Params: params(maxR(12)), Partitions: 12, Lag: 9000, Progress: true, Current: 1, ProduceRate: 5000, ReplicaRate: 1000, LastScale: t0.Add(-10 * time.Second)}, 6, 6, ReasonScaledUp, false},
		{"settling does not hold lag beyond what the rebalance explains", Input{Params: params(maxR(12)), Partitions: 12, Lag: 20_000, Progress: true, Current: 1, ProduceRate: 600, ReplicaRate: 1000, LastScale: t0.Add(-10 * time.Second)}, 12, 12, ReasonScaledUp, false},
		{"settling needs a known per-replica rate", Input{Params: params(maxR(12)), Partitions: 12, Lag: 2004, Progress: true, Current: 1, ProduceRate: 600, LastScale: t0.Add(-10 * time.Second)}, 3, 3, ReasonScaledUp, false},
		// Measured capacity: used as is, in place of the commit-growth lower bound.
		{"measured capacity replaces the lower bound in the rate floor", Input{Params: params(maxR(12)), Partitions: 12, Lag: 500, Progress: true, Current: 12, ProduceRate: 600, ReplicaRate: 400, MeasuredCapacity: 1000}, 1, 1, ReasonScaledDown, false},
		{"the lower bound alone holds more", Input{Params: params(maxR(12)), Partitions: 12, Lag: 500, Progress: true, Current: 12, ProduceRate: 600, ReplicaRate: 400}, 2, 2, ReasonScaledDown, false},
		{"a lower measured capacity holds more than the lower bound", Input{Params: params(maxR(12)), Partitions: 12, Lag: 500, Progress: true, Current: 12, ProduceRate: 2000, ReplicaRate: 1000, MeasuredCapacity: 500}, 6, 6, ReasonScaledDown, false},
		// A measured throughput ceiling (a throttling sink): no more replicas than reach it.
		{"a ceiling caps the lag rule", Input{Params: params(maxR(12)), Partitions: 12, Lag: 50_000, Progress: true, Current: 1, ProduceRate: 5000, MeasuredCapacity: 1000, MaxThroughput: 3000}, 3, 3, ReasonScaledUp, false},
		{"a ceiling lowers what the window remembers", Input{Params: params(maxR(12)), Partitions: 12, Lag: 50_000, Progress: true, Current: 12, ProduceRate: 5000, MeasuredCapacity: 1000, MaxThroughput: 3000, History: hist(-time.Minute, 12)}, 3, 3, ReasonScaledDown, false},
		{"a ceiling needs a measured capacity", Input{Params: params(maxR(12)), Partitions: 12, Lag: 50_000, Progress: true, Current: 1, ProduceRate: 5000, ReplicaRate: 1000, MaxThroughput: 3000}, 12, 12, ReasonScaledUp, false},
		// Lag time target: (lag / target + produce rate) over the per-replica capacity.
		{"a lag time target asks for lag over the target plus the produce rate", Input{Params: params(maxR(12), per(100_000), lagTime(10*time.Second)), Partitions: 12, Lag: 20_000, Progress: true, Current: 1, ProduceRate: 1000, MeasuredCapacity: 1000}, 3, 3, ReasonScaledUp, false},
		{"a lag time target is rounded like the other rules", Input{Params: params(maxR(12), per(100_000), lagTime(10*time.Second)), Partitions: 12, Lag: 40_000, Progress: true, Current: 1, ProduceRate: 1000, MeasuredCapacity: 1000}, 6, 6, ReasonScaledUp, false},
		{"a lag time target needs a capacity", Input{Params: params(maxR(12), per(100_000), lagTime(10*time.Second)), Partitions: 12, Lag: 20_000, Progress: true, Current: 1, ProduceRate: 1000}, 1, 1, ReasonSteady, false},
		{"the lag rule still applies under a lag time target", Input{Params: params(maxR(12), lagTime(time.Hour)), Partitions: 12, Lag: 4000, Progress: true, Current: 1, ProduceRate: 100, MeasuredCapacity: 1000}, 4, 4, ReasonScaledUp, false},
		// Slow partitions: their lag keeps one replica and adds none.
		{"slow lag alone keeps one replica", Input{Params: params(maxR(12)), Partitions: 12, SlowLag: 30_000, Progress: true, Current: 1, IdleSince: at(-time.Hour)}, 1, 1, ReasonSteady, false},
		{"slow lag adds no replicas", Input{Params: params(maxR(12)), Partitions: 12, Lag: 1000, SlowLag: 30_000, Progress: true, Current: 1}, 1, 1, ReasonSteady, false},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			in.Now = t0
			d := Decide(in)
			if d.Replicas != c.want || d.Recommendation != c.wantRec || d.Reason != c.wantReason || d.Idle != c.wantIdle {
				t.Errorf("Decide = replicas %d, rec %d, reason %s, idle %v (%s); want %d, %d, %s, %v",
					d.Replicas, d.Recommendation, d.Reason, d.Idle, d.Message, c.want, c.wantRec, c.wantReason, c.wantIdle)
			}
			if d.Message == "" {
				t.Error("empty message")
			}
			if d.Idle != (d.IdleSince != nil) {
				t.Errorf("idle %v but idleSince %v", d.Idle, d.IdleSince)
			}
		})
	}
}

func TestDecideKeepsIdleSince(t *testing.T) {
	since := at(-10 * time.Second)
	d := Decide(Input{Params: params(), Now: t0, Partitions: 4, Current: 1, IdleSince: since})
	if d.IdleSince == nil || !d.IdleSince.Equal(*since) {
		t.Fatalf("idleSince = %v, want %v", d.IdleSince, since)
	}
	d = Decide(Input{Params: params(), Now: t0, Partitions: 4, Current: 1, IdleSince: since, Lag: 1})
	if d.IdleSince != nil {
		t.Fatalf("idleSince = %v with lag, want nil", d.IdleSince)
	}
}

func TestEfficientReplicas(t *testing.T) {
	var got []int32
	for n := int32(1); n <= 10; n++ {
		m := EfficientReplicas(n, 10, 0)
		if len(got) == 0 || got[len(got)-1] != m {
			got = append(got, m)
		}
	}
	want := []int32{1, 2, 3, 4, 5, 10}
	if len(got) != len(want) {
		t.Fatalf("counts used for 10 partitions = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("counts used for 10 partitions = %v, want %v", got, want)
		}
	}
}

func TestLag(t *testing.T) {
	tp := TopicPartition{Topic: "t", Partition: 0}
	cases := []struct {
		name      string
		o         Offsets
		earliest  bool
		wantLag   int64
		wantReset bool
	}{
		{"committed behind newest", Offsets{tp, 100, 0, 40}, false, 60, false},
		{"caught up", Offsets{tp, 100, 0, 100}, false, 0, false},
		{"no commit, Latest: no lag", Offsets{tp, 100, 10, -1}, false, 0, true},
		{"no commit, Earliest: the retained log", Offsets{tp, 100, 10, -1}, true, 90, true},
		{"no commit, Earliest, oldest unknown: no guess", Offsets{tp, 100, -1, -1}, true, 0, true},
		{"committed past newest (topic recreated), Latest", Offsets{tp, 5, 0, 500}, false, 0, true},
		{"committed past newest, Earliest", Offsets{tp, 5, 0, 500}, true, 5, true},
		{"committed below retention, Latest", Offsets{tp, 1000, 900, 10}, false, 0, true},
		{"committed below retention, Earliest", Offsets{tp, 1000, 900, 10}, true, 100, true},
		{"empty partition, no commit, Earliest", Offsets{tp, 0, 0, -1}, true, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pl := Lag(c.o, c.earliest)
			if pl.Lag != c.wantLag || pl.Reset != c.wantReset {
				t.Errorf("Lag = %d reset %v, want %d reset %v", pl.Lag, pl.Reset, c.wantLag, c.wantReset)
			}
		})
	}
}

func TestTrackStalls(t *testing.T) {
	a := TopicPartition{Topic: "t", Partition: 0}
	b := TopicPartition{Topic: "t", Partition: 1}
	poll := func(ca, cb int64, la, lb int64) []PartitionLag {
		return []PartitionLag{{TopicPartition: a, Committed: ca, Lag: la}, {TopicPartition: b, Committed: cb, Lag: lb}}
	}
	var st map[TopicPartition]StallState
	// b moves every poll; a keeps its offset with lag.
	for i := range 3 {
		s := TrackStalls(st, poll(5, int64(10+i), 7, 3), true, 3)
		if i > 0 && !s.Progress {
			t.Fatalf("poll %d: no progress reported", i)
		}
		if len(s.Stalled) != 0 {
			t.Fatalf("poll %d: stalled too early: %v", i, s.Stalled)
		}
		st = s.State
	}
	s := TrackStalls(st, poll(5, 13, 7, 3), true, 3)
	if len(s.Stalled) != 1 || s.Stalled[0] != a {
		t.Fatalf("stalled = %v, want [%v]", s.Stalled, a)
	}
	// Without consumers nothing stalls.
	s = TrackStalls(s.State, poll(5, 13, 7, 3), false, 3)
	if len(s.Stalled) != 0 || s.Progress {
		t.Fatalf("not consuming: stalled %v progress %v", s.Stalled, s.Progress)
	}
	// Caught up is not stalled.
	s = TrackStalls(map[TopicPartition]StallState{a: {Committed: 5, Polls: 10}}, poll(5, 13, 0, 0), true, 3)
	if len(s.Stalled) != 0 {
		t.Fatalf("caught up but stalled: %v", s.Stalled)
	}
}
