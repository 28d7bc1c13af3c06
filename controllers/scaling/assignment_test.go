package scaling

import "testing"

// TestDecideMultiTopic: several topics of different partition counts. Range assigns each
// topic on its own, so replicas beyond the largest topic get nothing and the busiest
// replica holds its share of every topic; CooperativeSticky and RoundRobin spread all the
// partitions together.
func TestDecideMultiTopic(t *testing.T) {
	rng := func(ps ...int32) Assignment { return Assignment{TopicPartitions: ps, PerTopic: true} }
	all := func(ps ...int32) Assignment { return Assignment{TopicPartitions: ps} }
	cases := []struct {
		name string
		a    Assignment
		lag  int64
		want int32
	}{
		{"range: 12+4+2 caps at the largest topic", rng(12, 4, 2), 1_000_000, 12},
		{"spread: 12+4+2 caps at the sum", all(12, 4, 2), 1_000_000, 18},
		{"range: three topics of 4 cap at 4, not 12", rng(4, 4, 4), 1_000_000, 4},
		{"spread: three topics of 4 cap at 12", all(4, 4, 4), 1_000_000, 12},
		// 7 wanted. Range 10+3: 7 replicas give the busiest 2+1, as 5 do.
		{"range: 10+3 rounds 7 down to 5", rng(10, 3), 7000, 5},
		// Spread 13: 7 replicas give the busiest 2, as 7 do (6 give 3).
		{"spread: 10+3 keeps 7", all(10, 3), 7000, 7},
		// Range 8+8: 5 replicas give the busiest 2+2, as 4 do.
		{"range: 8+8 rounds 5 down to 4", rng(8, 8), 5000, 4},
	}
	for _, c := range cases {
		var total int32
		for _, p := range c.a.TopicPartitions {
			total += p
		}
		in := Input{Params: params(func(p *Params) { p.MaxReplicas = 50 }), Now: t0, Partitions: total, Assignment: c.a, Lag: c.lag, Current: 1}
		if got := Decide(in).Replicas; got != c.want {
			t.Errorf("%s: desired %d, want %d", c.name, got, c.want)
		}
	}
}

// TestBusiest: the partitions of the busiest replica, per assignor.
func TestBusiest(t *testing.T) {
	r := spread{total: 15, a: Assignment{TopicPartitions: []int32{10, 3, 2}, PerTopic: true}}
	s := spread{total: 15, a: Assignment{TopicPartitions: []int32{10, 3, 2}}}
	for n, want := range map[int32][2]int32{1: {15, 15}, 2: {5 + 2 + 1, 8}, 3: {4 + 1 + 1, 5}, 10: {1 + 1 + 1, 2}} {
		if got := r.busiest(n); got != want[0] {
			t.Errorf("range busiest(%d) = %d, want %d", n, got, want[0])
		}
		if got := s.busiest(n); got != want[1] {
			t.Errorf("spread busiest(%d) = %d, want %d", n, got, want[1])
		}
	}
}
