package scalesim

import (
	"strings"
	"testing"
	"time"

	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// scripted is a schedule of replica counts fixed in advance: the world's starting count until
// second at, then to (none when to is 0).
type scripted struct {
	at int
	to int32
}

// holding keeps the world's starting count for the whole trace.
func holding(tr Trace) scripted { return scripted{at: int(tr.Duration / time.Second)} }

func (s scripted) Step(now time.Time, _ []scaling.Offsets, current int32) int32 {
	if s.to > 0 && int(now.Sub(simStart)/time.Second) >= s.at {
		return s.to
	}
	return current
}

// TestSlowHandlerTraceNeedsReplicasNoSignalAsksFor is why the slow-handler trace's drain
// target is not met: being faster than KEDA there takes replicas standing before the burst
// that nothing in the trace asks for.
//
// The trace runs 600 msg/s, which one replica (1 000 msg/s, one of its 8 workers held by the
// slow key) keeps up with, then a burst of 3 000 msg/s from 300 s. KEDA meets the burst with
// the 12 replicas it already runs for the slow key's lag (lag that more replicas cannot work
// off) and drains its highest backlog in 2 s. The test replays every schedule that starts
// with n0 replicas (the most favourable case: no scale change before the burst piles up lag)
// and makes one change to any count at any second of the burst's first 30 s:
//
//   - from n0 <= 3, none drains faster than KEDA: 3 replicas less the slow key's worker do not
//     keep up with 3 000 msg/s, and the change's 5 s pause piles up at least 15 000 messages,
//     which even 12 replicas take 2 s to bring under the drain level;
//   - 4 replicas held from the start meet the target, for a fraction of KEDA's
//     replica-seconds: 4 replicas for 30 minutes of traffic that one replica keeps up with.
//
// A second change within the burst adds another pause; it cannot do better than one.
func TestSlowHandlerTraceNeedsReplicasNoSignalAsksFor(t *testing.T) {
	w := DefaultWorld()
	var tr Trace
	for _, c := range Traces() {
		if strings.HasPrefix(c.Name, "slow handler") {
			tr = c
		}
	}
	if tr.Slow == nil {
		t.Fatal("no slow-handler trace")
	}
	keda := Run(w, tr, NewKeda(w.LagPerReplica, w.MinReplicas, w.MaxReplicas))
	burst := 0
	for tr.Traffic(burst) <= tr.Traffic(0) {
		burst++
	}
	for n0 := int32(1); n0 <= 3; n0++ {
		from := w
		from.MinReplicas = n0 // the world starts with n0 replicas
		best := Run(from, tr, holding(tr))
		bestAt, bestTo := -1, n0
		for at := burst; at < burst+30; at++ {
			for to := n0 + 1; to <= w.MaxReplicas; to++ {
				if r := Run(from, tr, scripted{at: at, to: to}); r.Drain < best.Drain {
					best, bestAt, bestTo = r, at, to
				}
			}
		}
		t.Logf("from %d replicas: best drain %s (one change to %d at %d s; -1: none), KEDA %s", n0, best.Drain, bestTo, bestAt, keda.Drain)
		if best.Drain < keda.Drain {
			t.Errorf("from %d replicas a schedule drains in %s, faster than KEDA's %s: the target is reachable without replicas held before the burst",
				n0, best.Drain, keda.Drain)
		}
	}
	held := w
	held.MinReplicas = 4
	r := Run(held, tr, holding(tr))
	t.Logf("4 replicas held: drain %s, %d replica-seconds; KEDA %s, %d", r.Drain, r.ReplicaSeconds, keda.Drain, keda.ReplicaSeconds)
	if r.Drain >= keda.Drain || r.ReplicaSeconds >= keda.ReplicaSeconds {
		t.Errorf("4 replicas held: drain %s and %d replica-seconds, against KEDA's %s and %d", r.Drain, r.ReplicaSeconds, keda.Drain, keda.ReplicaSeconds)
	}
}
