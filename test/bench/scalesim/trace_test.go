package scalesim

import (
	"os"
	"testing"
	"time"

	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// logged wraps an Autoscaler and logs every replica change with the committed lag it saw.
type logged struct {
	a    Autoscaler
	t    *testing.T
	name string
}

// Telemetry passes the pods' telemetry on to an autoscaler that reads it.
func (l *logged) Telemetry(t Telemetry) {
	if r, ok := l.a.(TelemetryReader); ok {
		r.Telemetry(t)
	}
}

// Stalled passes on the stalled partitions of an autoscaler that reports them.
func (l *logged) Stalled() []int32 {
	if r, ok := l.a.(StallReporter); ok {
		return r.Stalled()
	}
	return nil
}

func (l *logged) Step(now time.Time, o []scaling.Offsets, cur int32) int32 {
	n := l.a.Step(now, o, cur)
	if n != cur {
		var lag int64
		for _, x := range o {
			lag += x.Newest - x.Committed
		}
		l.t.Logf("%s t=%4ds %2d -> %2d  committed lag %d", l.name, int(now.Sub(simStart)/time.Second), cur, n, lag)
	}
	return n
}

// TestDecisionTrace logs the replica changes of both autoscalers on one trace (or "all"),
// and with SCALESIM_RATES=1 the rates kpipe measured at each poll (SCALESIM_COOPERATIVE=1: in
// the cooperative world of MeasuredRebalance):
//
//	SCALESIM_TRACE="step burst" SCALESIM_RATES=1 go test ./test/bench/scalesim -run TestDecisionTrace -v
func TestDecisionTrace(t *testing.T) {
	name := os.Getenv("SCALESIM_TRACE")
	if name == "" {
		t.Skip("set SCALESIM_TRACE to a trace name or all")
	}
	if os.Getenv("SCALESIM_RATES") != "" {
		observeRates = func(now time.Time, r scaling.Rates, estimate, measured, ceiling float64) {
			t.Logf("      t=%4ds produce %6.0f/s consume %6.0f/s per replica >= %5.0f/s, estimate %5.0f/s, measured %5.0f/s, ceiling %5.0f/s",
				int(now.Sub(simStart)/time.Second), r.Produce, r.Consume, r.PerReplica, estimate, measured, ceiling)
		}
		defer func() { observeRates = nil }()
	}
	w := DefaultWorld()
	if os.Getenv("SCALESIM_COOPERATIVE") != "" {
		w.Rebalance = MeasuredRebalance()
	}
	for _, tr := range Traces() {
		if name != "all" && tr.Name != name {
			continue
		}
		t.Logf("== %s", tr.Name)
		k := Run(w, tr, &logged{a: newKpipe(w, signalsFromEnv()), t: t, name: "kpipe"})
		observe := observeRates
		observeRates = nil
		h := Run(w, tr, &logged{a: NewKeda(w.LagPerReplica, w.MinReplicas, w.MaxReplicas), t: t, name: "keda "})
		observeRates = observe
		t.Logf("kpipe %+v", k)
		t.Logf("keda  %+v", h)
	}
}

// signalsFromEnv is every signal, or none with SCALESIM_BEFORE set.
func signalsFromEnv() Signals {
	if os.Getenv("SCALESIM_BEFORE") != "" {
		return Signals{}
	}
	return AllSignals()
}
