package scalesim

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kpipe-io/kpipe/controllers/scaling"
)

func offsetsWithLag(lags ...int64) []scaling.Offsets {
	out := make([]scaling.Offsets, len(lags))
	for i, l := range lags {
		out[i] = scaling.Offsets{TopicPartition: scaling.TopicPartition{Topic: "t", Partition: int32(i)},
			Newest: 10_000 + l, Oldest: 0, Committed: 10_000}
	}
	return out
}

func spread(partitions int, total int64) []scaling.Offsets {
	lags := make([]int64, partitions)
	for i := range lags {
		lags[i] = total / int64(partitions)
	}
	return offsetsWithLag(lags...)
}

func TestKedaMetric(t *testing.T) {
	for _, tc := range []struct {
		name       string
		even       bool
		partitions int
		lag        int64
		want       int64
	}{
		{"even: 7 replicas' worth on 10 partitions rounds up to 10", true, 10, 7000, 10_000},
		{"even: 3.5 replicas' worth on 10 partitions rounds up to 5", true, 10, 3500, 5000},
		{"even: no lag is one factor", true, 10, 0, 1000},
		{"even: 2 on 12 partitions is a factor", true, 12, 2000, 2000},
		{"even: 5 on 12 partitions becomes 6", true, 12, 5000, 6000},
		{"plain: capped at the partition count", false, 12, 50_000, 12_000},
		{"plain: the sum of the lags", false, 12, 3600, 3600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := NewKeda(1000, 1, 100)
			k.EvenDistribution = tc.even
			if got := k.Metric(spread(tc.partitions, tc.lag)); got != tc.want {
				t.Errorf("metric = %d, want %d", got, tc.want)
			}
		})
	}
	k := NewKeda(1000, 1, 100)
	k.EvenDistribution = false
	if got := k.Metric(offsetsWithLag(5000, 0, 0)); got != 3000 {
		t.Errorf("a stuck partition's lag is capped with the rest: %d, want 3000", got)
	}
}

func TestKedaDesiredTolerance(t *testing.T) {
	k := NewKeda(1000, 1, 100)
	for _, tc := range []struct {
		metric  int64
		current int32
		want    int32
	}{
		{1050, 1, 1}, // within 10%
		{1090, 1, 1},
		{2500, 1, 3},
		{4500, 5, 5}, // 0.9
		{4000, 5, 4},
		{0, 3, 0},
	} {
		if got := k.Desired(tc.metric, tc.current); got != tc.want {
			t.Errorf("Desired(%d, %d) = %d, want %d", tc.metric, tc.current, got, tc.want)
		}
	}
}

func TestKedaStep(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k := NewKeda(1000, 1, 12)
	k.EvenDistribution = false
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	// Scale-up is limited to max(2x, +4) per sync.
	if got := k.Step(at(0), spread(12, 12_000), 1); got != 5 {
		t.Fatalf("first sync from 1: %d, want 5 (+4)", got)
	}
	if got := k.Step(at(5), spread(12, 12_000), 5); got != 5 {
		t.Fatalf("between syncs: %d, want 5", got)
	}
	if got := k.Step(at(15), spread(12, 12_000), 5); got != 10 {
		t.Fatalf("second sync from 5: %d, want 10 (2x)", got)
	}
	if got := k.Step(at(30), spread(12, 12_000), 10); got != 12 {
		t.Fatalf("third sync: %d, want 12", got)
	}
	// No lag: held at 12 for the 300 s stabilization window, then down.
	if got := k.Step(at(45), spread(12, 0), 12); got != 12 {
		t.Fatalf("scale-down within the window: %d, want 12", got)
	}
	if got := k.Step(at(329), spread(12, 0), 12); got != 12 {
		t.Fatalf("scale-down at 299 s after the last 12: %d, want 12", got)
	}
	if got := k.Step(at(345), spread(12, 0), 12); got != 1 {
		t.Fatalf("scale-down after the window: %d, want 1", got)
	}
}

func TestDrainSharesCapacity(t *testing.T) {
	produced := []float64{100, 5, 100, 100}
	processed := []float64{0, 0, 0, 0}
	// Two replicas, 30 msg/s each: one owns 0 (2 is stuck and left out), the other 1 and 3.
	if done := drain(30, []int{0}, produced, processed); done != 30 {
		t.Errorf("first replica processed %.1f, want 30", done)
	}
	if done := drain(30, []int{1, 3}, produced, processed); done != 30 {
		t.Errorf("second replica processed %.1f, want 30", done)
	}
	want := []float64{30, 5, 0, 25}
	for p := range want {
		if processed[p] != want[p] {
			t.Errorf("partition %d processed %.1f, want %.1f (all: %v)", p, processed[p], want[p], processed)
		}
	}
}

func TestKpipeIgnoresAStuckPartitionAfterStallPolls(t *testing.T) {
	w := DefaultWorld()
	k := newKpipe(w, Signals{})
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var current int32 = 1
	for i := range 45 { // 6 polls to call it stalled, then the 5 m stabilization window
		// Partition 0 keeps 20k of lag at the same committed offset; the others have none.
		current = k.Step(start.Add(time.Duration(i)*10*time.Second), offsetsWithLag(20_000, 0, 0, 0), current)
	}
	if current != 1 {
		t.Errorf("a stuck partition still drives %d replicas after %d polls", current, k.StallPolls)
	}
}

func newKpipe(w World, signals Signals) *Kpipe {
	return &Kpipe{
		Params: scaling.Params{MinReplicas: w.MinReplicas, MaxReplicas: w.MaxReplicas, LagPerReplica: w.LagPerReplica,
			IdleWindow: 5 * time.Minute, IdlePenalty: 5 * time.Minute, ScaleDownStabilization: 5 * time.Minute},
		PollInterval:   10 * time.Second,
		StallPolls:     6,
		CommitInterval: w.CommitInterval,
		Signals:        signals,
	}
}

// runs is one trace replayed through kpipe with its telemetry (after), kpipe without it
// (before: the policy as it was), and KEDA, with the oracle of each kpipe run.
type runs struct {
	after, before, keda       Result
	oracleAfter, oracleBefore int64
}

func replay(w World, tr Trace) runs {
	r := runs{
		after:  Run(w, tr, newKpipe(w, AllSignals())),
		before: Run(w, tr, newKpipe(w, Signals{})),
		keda:   Run(w, tr, NewKeda(w.LagPerReplica, w.MinReplicas, w.MaxReplicas)),
	}
	r.oracleAfter = Oracle(w, tr, drainLimit(r.after.Backlog, w.LagPerReplica))
	r.oracleBefore = Oracle(w, tr, drainLimit(r.before.Backlog, w.LagPerReplica))
	return r
}

// replicaBound is whether replica capacity is what limits draining the trace's backlog: not a
// sink that throttles.
func replicaBound(tr Trace) bool { return tr.SinkLimit == 0 }

// targetMet is the target for one trace: kpipe drains no slower than KEDA (faster
// where replica capacity limits draining), spends no more replica-seconds, and calls no
// partition stalled that is not stuck.
func targetMet(tr Trace, kp, keda Result) bool {
	faster := kp.Drain <= keda.Drain
	if replicaBound(tr) {
		faster = kp.Drain < keda.Drain
	}
	return faster && kp.ReplicaSeconds <= keda.ReplicaSeconds && kp.FalseStalled == 0
}

// BenchmarkScalingPolicy replays every trace through kpipe's policy (defaults: 10 s polls,
// 5 m scale-down stabilization, stall after 6 polls) with and without the pods' telemetry, and
// the KEDA + HPA model (defaults, ensureEvenDistributionOfPartitions on), in the same world,
// computes the oracle of each kpipe run, and logs BENCH rows.
//
//	go test ./test/bench/scalesim -run '^$' -bench . -benchtime 1x -v
func BenchmarkScalingPolicy(b *testing.B) {
	w := DefaultWorld()
	results := map[string]runs{}
	for b.Loop() {
		for _, tr := range Traces() {
			results[tr.Name] = replay(w, tr)
		}
	}
	const section = "6 scaling simulator (kpipe policy vs KEDA+HPA model)"
	for _, tr := range Traces() {
		r := results[tr.Name]
		note := "target: MISSED"
		if targetMet(tr, r.after, r.keda) {
			note = "target: met"
		}
		row := func(what, a, c, ratio, note string) {
			b.Logf("BENCH|%s|%s: %s|%s|%s|%s|%s", section, tr.Name, what, a, c, ratio, note)
		}
		rs := func(x Result) string { return fmt.Sprint(x.ReplicaSeconds) }
		row("time to drain the peak backlog", r.after.Drain.String(), r.keda.Drain.String(), ratioOf(float64(r.after.Drain), float64(r.keda.Drain)),
			note+fmt.Sprintf("; before telemetry %s (%s)", r.before.Drain, ratioOf(float64(r.before.Drain), float64(r.keda.Drain))))
		row("replica-seconds", rs(r.after), rs(r.keda), ratioOf(float64(r.after.ReplicaSeconds), float64(r.keda.ReplicaSeconds)),
			fmt.Sprintf("before telemetry %s (%s)", rs(r.before), ratioOf(float64(r.before.ReplicaSeconds), float64(r.keda.ReplicaSeconds))))
		row("replica-seconds / oracle", ratioOf(float64(r.after.ReplicaSeconds), float64(r.oracleAfter)), "", "",
			fmt.Sprintf("oracle %d; before telemetry %s of its oracle %d", r.oracleAfter,
				ratioOf(float64(r.before.ReplicaSeconds), float64(r.oracleBefore)), r.oracleBefore))
		row("time backlogged (lag > lagPerReplica)", r.after.Backlogged.String(), r.keda.Backlogged.String(), ratioOf(float64(r.after.Backlogged), float64(r.keda.Backlogged)),
			"before telemetry "+r.before.Backlogged.String())
		row("scale changes / max replicas", fmt.Sprintf("%d / %d", r.after.ScaleChanges, r.after.MaxReplicas), fmt.Sprintf("%d / %d", r.keda.ScaleChanges, r.keda.MaxReplicas), "",
			fmt.Sprintf("before telemetry %d / %d", r.before.ScaleChanges, r.before.MaxReplicas))
		row("max lag", fmt.Sprint(r.after.MaxLag), fmt.Sprint(r.keda.MaxLag), ratioOf(float64(r.after.MaxLag), float64(r.keda.MaxLag)), "")
		row("false Stalled", r.after.FalseStalled.String(), "", "", "before telemetry "+r.before.FalseStalled.String())
	}
}

func ratioOf(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// TestSignalAblation logs, per trace, what kpipe achieves with no signal, each signal of the
// telemetry alone, and all of them, against KEDA:
//
//	SCALESIM_ABLATION=1 go test ./test/bench/scalesim -run TestSignalAblation -v
func TestSignalAblation(t *testing.T) {
	if os.Getenv("SCALESIM_ABLATION") == "" {
		t.Skip("set SCALESIM_ABLATION=1")
	}
	w := DefaultWorld()
	variants := []struct {
		name string
		s    Signals
	}{
		{"none", Signals{}},
		{"capacity", Signals{Capacity: true}},
		{"capacity+ceiling", Signals{Capacity: true, Ceiling: true}},
		{"members", Signals{Members: true}},
		{"slow", Signals{Slow: true}},
		{"all", AllSignals()},
	}
	t.Logf("| trace | signals | drain (KEDA) | replica-seconds (x KEDA) | changes | false Stalled |")
	for _, tr := range Traces() {
		keda := Run(w, tr, NewKeda(w.LagPerReplica, w.MinReplicas, w.MaxReplicas))
		for _, v := range variants {
			r := Run(w, tr, newKpipe(w, v.s))
			t.Logf("| %s | %s | %s (%s) | %d (%s) | %d | %s |", tr.Name, v.name, r.Drain, keda.Drain, r.ReplicaSeconds,
				ratioOf(float64(r.ReplicaSeconds), float64(keda.ReplicaSeconds)), r.ScaleChanges, r.FalseStalled)
		}
	}
}
