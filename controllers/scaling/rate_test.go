package scaling

import (
	"math"
	"testing"
	"time"
)

func offs(newestCommitted ...int64) []Offsets {
	var out []Offsets
	for i := 0; i < len(newestCommitted); i += 2 {
		out = append(out, Offsets{TopicPartition: TopicPartition{Topic: "t", Partition: int32(i / 2)},
			Newest: newestCommitted[i], Oldest: 0, Committed: newestCommitted[i+1]})
	}
	return out
}

func TestMeasureRates(t *testing.T) {
	prevAt := t0.Add(-10 * time.Second)
	prev := Poll{Offsets: offs(1000, 900, 1000, 1000, 500, -1), NewestAt: prevAt, CommittedAt: prevAt, Replicas: 4}
	cases := []struct {
		name                      string
		prev, cur                 Poll
		skip                      map[TopicPartition]bool
		produce, consume, perRepl float64
		ok                        bool
	}{
		{"rates over the interval; a partition without commit counts for produce only",
			prev, Poll{Offsets: offs(3000, 2900, 2000, 1500, 1500, -1), NewestAt: t0, CommittedAt: t0, Replicas: 2},
			nil, 400, 250, 62.5, true},
		{"stalled partitions are left out",
			prev, Poll{Offsets: offs(3000, 2900, 2000, 1000, 1500, -1), NewestAt: t0, CommittedAt: t0, Replicas: 4},
			map[TopicPartition]bool{{Topic: "t", Partition: 1}: true}, 300, 200, 50, true},
		{"a re-created topic and a reset commit are not traffic",
			prev, Poll{Offsets: offs(10, 5, 2000, 500, 1500, -1), NewestAt: t0, CommittedAt: t0, Replicas: 4},
			nil, 200, 0, 0, true},
		{"no earlier poll", Poll{}, Poll{Offsets: offs(10, 5), NewestAt: t0, CommittedAt: t0, Replicas: 1}, nil, 0, 0, 0, false},
		{"the same read twice", prev, prev, nil, 0, 0, 0, false},
		{"no replica ran", Poll{Offsets: offs(0, 0), NewestAt: prevAt, CommittedAt: prevAt}, Poll{Offsets: offs(100, 0), NewestAt: t0, CommittedAt: t0}, nil, 10, 0, 0, true},
		{"replicas that caught up measure no capacity: they were idle part of the time",
			prev, Poll{Offsets: offs(3000, 3000, 2000, 2000, 1500, -1), NewestAt: t0, CommittedAt: t0, Replicas: 4},
			nil, 400, 310, 0, true},
	}
	// One commit interval of slack: 2500 messages committed in 10 s may have taken 11 s.
	r := MeasureRates(cases[0].prev, cases[0].cur, nil, time.Second)
	if want := 2500.0 / 11 / 4; math.Abs(r.PerReplica-want) > 1e-9 || r.Consume != 250 {
		t.Errorf("with a 1 s commit interval: %+v, want perReplica %v, consume 250", r, want)
	}
	// At a steady 270 msg/s with a 1 s commit trail, 400 messages left are the trail, not a
	// backlog: no sample.
	steady := Poll{Offsets: offs(3000, 2800, 2000, 1800, 1500, -1), NewestAt: t0, CommittedAt: t0, Replicas: 4}
	if r := MeasureRates(prev, steady, nil, time.Second); r.PerReplica != 0 || !r.OK {
		t.Errorf("a commit trail taken for a backlog: %+v", r)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := MeasureRates(c.prev, c.cur, c.skip, 0)
			near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
			if r.OK != c.ok || !near(r.Produce, c.produce) || !near(r.Consume, c.consume) || !near(r.PerReplica, c.perRepl) {
				t.Errorf("got %+v, want produce %v consume %v perReplica %v ok %v", r, c.produce, c.consume, c.perRepl, c.ok)
			}
		})
	}
}

func TestCapacityKeepsTheHighestRecentSample(t *testing.T) {
	var c Capacity
	if got := c.Estimate(t0); got != 0 {
		t.Fatalf("no sample: %v, want 0 (unknown)", got)
	}
	c = c.Observe(t0, 400)
	c = c.Observe(t0.Add(10*time.Second), 900) // same bucket: the highest stays
	c = c.Observe(t0.Add(20*time.Second), 100)
	c = c.Observe(t0.Add(20*time.Minute), 300)
	if len(c) != 2 {
		t.Fatalf("%d buckets, want 2: %v", len(c), c)
	}
	if got := c.Estimate(t0.Add(30 * time.Minute)); got != 900 {
		t.Errorf("estimate %v, want 900", got)
	}
	c = c.Observe(t0.Add(CapacityMemory+time.Minute), 0)
	if got := c.Estimate(t0.Add(CapacityMemory + time.Minute)); got != 300 {
		t.Errorf("after an hour the old sample is forgotten: %v, want 300", got)
	}
}

func TestRateReplicas(t *testing.T) {
	for _, c := range []struct {
		produce, perReplica float64
		partitions, upper   int32
		want                int32
	}{
		{3000, 1000, 12, 12, 3},  // 4 partitions of 250 each
		{3000, 1000, 10, 10, 4},  // 3 would give the busiest 4 partitions: 1200
		{7000, 1000, 10, 10, 10}, // only one partition each keeps up
		{50_000, 1000, 12, 12, 12},
		{600, 1000, 12, 12, 1},
		{0, 1000, 12, 12, 0},
		{3000, 0, 12, 8, 8}, // unknown rate: the upper bound (callers check first)
		{3000, 1000, 12, 2, 2},
	} {
		if got := RateReplicas(c.produce, c.perReplica, c.partitions, c.upper); got != c.want {
			t.Errorf("RateReplicas(%v, %v, %d, %d) = %d, want %d", c.produce, c.perReplica, c.partitions, c.upper, got, c.want)
		}
	}
}
