package scaling

import (
	"testing"
	"time"
)

func TestThroughputLatestWithoutCeiling(t *testing.T) {
	var tp Throughput
	tp = tp.Observe(t0, 1, 1000)
	tp = tp.Observe(t0.Add(10*time.Second), 4, 900) // within noise of 1000
	tp = tp.Observe(t0.Add(20*time.Second), 4, 0)   // nothing measured: kept
	c, ceiling := tp.Estimate(t0.Add(20 * time.Second))
	if c != 900 || ceiling != 0 {
		t.Fatalf("estimate %v ceiling %v, want the latest 900 and no ceiling", c, ceiling)
	}
}

func TestThroughputCeilingFromAThrottlingSink(t *testing.T) {
	// A sink that takes 3000 msg/s whatever the replicas: 1 replica does 1000, 12 do 250 each.
	var tp Throughput
	tp = tp.Observe(t0, 1, 1000)
	tp = tp.Observe(t0.Add(10*time.Second), 12, 250)
	c, ceiling := tp.Estimate(t0.Add(10 * time.Second))
	if c != 1000 || ceiling != 3000 {
		t.Fatalf("estimate %v ceiling %v, want 1000 and 3000", c, ceiling)
	}
	// Back at 3 replicas, unthrottled: the evidence at 12 is remembered, the ceiling holds.
	tp = tp.Observe(t0.Add(30*time.Second), 3, 1000)
	if c, ceiling = tp.Estimate(t0.Add(30 * time.Second)); c != 1000 || ceiling != 3000 {
		t.Fatalf("at 3: estimate %v ceiling %v, want 1000 and 3000", c, ceiling)
	}
	d := Decide(Input{Params: params(func(p *Params) { p.MaxReplicas = 12 }), Now: t0, Partitions: 12, Lag: 60_000,
		Progress: true, Current: 3, ProduceRate: 5000, MeasuredCapacity: c, MaxThroughput: ceiling})
	if d.Replicas != 3 {
		t.Fatalf("with the ceiling the lag asks for %d replicas (%s), want 3", d.Replicas, d.Message)
	}
	// The evidence expires.
	if _, ceiling = tp.Estimate(t0.Add(ThroughputMemory + 20*time.Second)); ceiling != 0 {
		t.Fatalf("ceiling %v after ThroughputMemory, want forgotten", ceiling)
	}
}
