package scaling

import (
	"testing"
	"time"
)

// A fresh memory seeds the history with the current count without keeping it; Record keeps a
// decision's history and idle clock and starts the zero clock on a scale to zero for idleness;
// Override forgets the history and the zero clock; restored clocks win until the process has
// its own.
func TestMemoryRecordsDecisions(t *testing.T) {
	now := time.Date(2026, 11, 21, 7, 0, 0, 0, time.UTC)
	var m Memory
	in := m.Input(Input{Now: now, Current: 3}, nil)
	if len(in.History) != 1 || in.History[0].Replicas != 3 || m.history != nil {
		t.Fatalf("seeded history %v, memory %v", in.History, m.history)
	}
	idle := now.Add(-time.Minute)
	restored := &Clocks{IdleSince: &idle}
	if in := m.Input(Input{Now: now}, restored); in.IdleSince != &idle {
		t.Fatalf("restored idle clock not used: %v", in.IdleSince)
	}
	m.Record(now, Decision{Replicas: 0, Reason: ReasonIdleToZero, IdleSince: &idle, History: nil})
	in = m.Input(Input{Now: now.Add(time.Second)}, nil)
	if in.ZeroSince == nil || !in.ZeroSince.Equal(now) || in.IdleSince != &idle {
		t.Fatalf("clocks after a scale to zero: idle %v zero %v", in.IdleSince, in.ZeroSince)
	}
	m.Record(now, Decision{Replicas: 2, History: []Recommendation{{Time: now, Replicas: 2}}})
	if in := m.Input(Input{Now: now}, nil); in.ZeroSince != nil || len(in.History) != 1 || in.IdleSince != nil {
		t.Fatalf("after waking: zero %v history %v idle %v", in.ZeroSince, in.History, in.IdleSince)
	}
	m.Override()
	if in := m.Input(Input{Now: now}, nil); in.History != nil {
		t.Fatalf("history after Override: %v", in.History)
	}
}

// Stall counts advance at most once per half poll interval.
func TestMemoryTracksStallsOncePerHalfInterval(t *testing.T) {
	now := time.Date(2026, 11, 21, 7, 0, 0, 0, time.UTC)
	tp := TopicPartition{Topic: "t"}
	lags := []PartitionLag{{TopicPartition: tp, Lag: 10, Committed: 5}}
	var m Memory
	for i := range 6 {
		m.Observe(Observation{Now: now.Add(time.Duration(i) * time.Second), PollInterval: time.Second, Lags: lags, Consuming: true, StallPolls: 3})
		// An extra reconcile right after the poll does not count.
		m.Observe(Observation{Now: now.Add(time.Duration(i)*time.Second + 100*time.Millisecond), PollInterval: time.Second, Lags: lags, Consuming: true, StallPolls: 3})
	}
	if got := m.Stalled(); len(got) != 1 || !m.StalledSet()[tp] {
		t.Fatalf("stalled %v", got)
	}
	if m.stall[tp].Polls != 5 {
		t.Fatalf("stall polls %d, want 5", m.stall[tp].Polls)
	}
}

// The capacity the pods report reaches the policy through the memory: the latest while more
// replicas add throughput, and a ceiling once more replicas measured much less each (a sink
// that throttles). A poll without a fresh record is no sample, and samples age out.
func TestMemoryGivesMeasuredCapacityAndCeiling(t *testing.T) {
	now := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)
	var m Memory
	m.ObserveCapacity(now, 2, 1000)
	m.ObserveCapacity(now.Add(time.Second), 3, 0) // no fresh record: not a sample
	if in := m.Input(Input{Now: now}, nil); in.MeasuredCapacity != 1000 || in.MaxThroughput != 0 {
		t.Fatalf("one sample: capacity %v ceiling %v, want 1000 and none", in.MeasuredCapacity, in.MaxThroughput)
	}
	m.ObserveCapacity(now.Add(time.Minute), 8, 250) // 8 replicas did 2000 msg/s, 4x less each
	in := m.Input(Input{Now: now.Add(time.Minute)}, nil)
	if in.MeasuredCapacity != 1000 || in.MaxThroughput != 2000 {
		t.Fatalf("throttled: capacity %v ceiling %v, want 1000 and 2000", in.MeasuredCapacity, in.MaxThroughput)
	}
	if in := m.Input(Input{Now: now.Add(time.Minute + ThroughputMemory)}, nil); in.MeasuredCapacity != 0 || in.MaxThroughput != 0 {
		t.Fatalf("after ThroughputMemory: capacity %v ceiling %v, want both unknown", in.MeasuredCapacity, in.MaxThroughput)
	}
}
