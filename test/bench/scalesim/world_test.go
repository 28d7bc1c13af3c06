package scalesim

import (
	"math"
	"testing"
	"time"
)

func constant(rate float64) func(int) float64 { return func(int) float64 { return rate } }

func TestSinkCapsWhatAllReplicasProcess(t *testing.T) {
	w := DefaultWorld()
	s := newWorld(w, Trace{Partitions: 12, Stuck: -1, SinkLimit: 3000, Traffic: constant(5000)})
	s.replicas = 12
	s.step(0)
	var done float64
	for p := range s.processed {
		done += s.processed[p]
	}
	if math.Abs(done-3000) > 1e-6 {
		t.Fatalf("12 replicas behind a 3000 msg/s sink processed %.0f, want 3000", done)
	}
	k := newKpipe(w, AllSignals())
	k.Telemetry(s.tel)
	if c := k.measuredCapacity(simStart); math.Abs(c-250) > 1e-6 {
		t.Fatalf("measured capacity %.1f, want 250 (each replica waits on the sink)", c)
	}
}

func TestSlowKeyHoldsItsPartitionsCommit(t *testing.T) {
	w := DefaultWorld()
	tr := Trace{Partitions: 2, Stuck: -1, Traffic: constant(100),
		Slow: &SlowKey{Partition: 0, Every: time.Hour, Takes: time.Minute}}
	s := newWorld(w, tr)
	for sec := range 30 {
		s.step(sec)
	}
	if s.committed[0] != 50 || s.committed[1] < 1000 {
		t.Fatalf("committed %v: partition 0 must be held at the slow message (offset 50, produced in second 0), partition 1 must move", s.committed)
	}
	if pt := s.tel.Partitions[0]; pt.InFlight != 1 || pt.OldestInFlight != 29*time.Second || pt.Retrying {
		t.Fatalf("slow partition telemetry %+v, want one message in flight for 29s, not retrying", pt)
	}
	for sec := 30; sec < 65; sec++ {
		s.step(sec)
	}
	if s.committed[0] < 3000 {
		t.Fatalf("after the slow message finished the partition still commits %d", s.committed[0])
	}
}

func TestIdleReplicasRestThenRejoin(t *testing.T) {
	w := DefaultWorld()
	traffic := func(t int) float64 {
		if t < 10 {
			return 100
		}
		if t >= 100 {
			return 100
		}
		return 0
	}
	s := newWorld(w, Trace{Partitions: 4, Stuck: -1, Rest: true, Traffic: traffic})
	s.replicas = 2
	for sec := range 120 {
		s.step(sec)
	}
	if s.tel.Members != 0 {
		t.Fatalf("members %d at 120 s: the replicas idle from 10 s must rest from 70 s for 5 m", s.tel.Members)
	}
	before := s.committed[0]
	s.replicas = 3 // a new replica joins at once and consumes
	for sec := 120; sec < 130; sec++ {
		s.step(sec)
	}
	if s.tel.Members != 1 || s.committed[0] <= before {
		t.Fatalf("a replica added while the others rest: members %d, committed %d -> %d", s.tel.Members, before, s.committed[0])
	}
	for sec := 130; sec < 400; sec++ {
		s.step(sec)
	}
	if s.tel.Members != 3 {
		t.Fatalf("members %d after the penalty, want all 3 back", s.tel.Members)
	}
}

func TestOracleDefersWorkToTheLimit(t *testing.T) {
	w := DefaultWorld()
	spike := func(t int) float64 {
		if t == 0 {
			return 3000
		}
		return 0
	}
	tr := Trace{Partitions: 12, Stuck: -1, Duration: 10 * time.Second, Traffic: spike}
	limit := make([]float64, 10)
	for i := range limit {
		limit[i] = 1000
	}
	// Second 0: 2 replicas bring 3000 down to the limit; second 1: 1 replica (the minimum)
	// works off the rest; then the minimum. 3 + 9 if it processed everything at once.
	if got := Oracle(w, tr, limit); got != 11 {
		t.Fatalf("oracle %d replica-seconds, want 11", got)
	}
	// With the limit at zero it must process all of it in second 0: 3 replicas.
	for i := range limit {
		limit[i] = 0
	}
	if got := Oracle(w, tr, limit); got != 12 {
		t.Fatalf("oracle %d replica-seconds with no backlog allowed, want 12", got)
	}
}

func TestOracleNeverAboveTheRuns(t *testing.T) {
	w := DefaultWorld()
	for _, tr := range Traces() {
		r := Run(w, tr, newKpipe(w, AllSignals()))
		if o := Oracle(w, tr, drainLimit(r.Backlog, w.LagPerReplica)); o > r.ReplicaSeconds || o <= 0 {
			t.Errorf("%s: oracle %d replica-seconds against kpipe's %d", tr.Name, o, r.ReplicaSeconds)
		}
	}
}
