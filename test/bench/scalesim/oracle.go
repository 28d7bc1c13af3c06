package scalesim

import "time"

// Oracle is the fewest replica-seconds any schedule of replica counts needs, knowing the whole
// trace in advance, to keep the backlog of the partitions that are not stuck at or below
// limit[t] at every second t. The benchmark passes kpipe's own backlog at each second (or the
// drain level, LagPerReplica, when that is higher): the oracle drains everything kpipe drained,
// at least as early, at the least cost.
//
// The oracle's world is kinder than the simulated one, so its answer is a lower bound: a
// replica count change costs no rebalance pause, pods never rest, and n replicas process
// min(n, partitions that can move) x Rate messages per second (capped by the sink) whatever
// the partitions' assignment.
//
// The computation has two passes over the trace:
//
//   - backward, the most backlog allowed at the end of each second: M[last] = limit[last], and
//     M[t] = min(limit[t], M[t+1] + full[t+1] - arrivals[t+1]), full[t] being what the most
//     replicas process at second t; more than M[t] at t cannot be worked off in time;
//   - forward, at each second the fewest replicas (at least MinReplicas) that bring the
//     backlog plus the arrivals down to M[t]; the replicas paid for process all they can.
//
// Deferring work as long as M allows and never leaving a paid replica idle is optimal: a
// schedule that processes the same messages earlier cannot pay for fewer replica-seconds,
// because each second's count only has to cover what must be done by then.
func Oracle(w World, tr Trace, limit []float64) int64 {
	secs := min(int(tr.Duration/time.Second), len(limit))
	if secs == 0 {
		return 0
	}
	arrivals := make([]float64, secs)
	for t := range arrivals {
		arrivals[t] = tr.Traffic(t) * float64(movable(tr, t)) / float64(tr.Partitions)
	}
	most := make([]float64, secs)
	most[secs-1] = limit[secs-1]
	for t := secs - 2; t >= 0; t-- {
		most[t] = max(min(limit[t], most[t+1]+oracleCapacity(w, tr, w.MaxReplicas, t+1)-arrivals[t+1]), 0)
	}
	var backlog float64
	var total int64
	for t := range secs {
		in := backlog + arrivals[t]
		n := w.MinReplicas
		for n < w.MaxReplicas && in-oracleCapacity(w, tr, n, t) > most[t]+1e-6 {
			n++
		}
		backlog = in - min(in, oracleCapacity(w, tr, n, t))
		total += int64(n)
	}
	return total
}

// movable is the partitions that can be processed at second t: all but the stuck one.
func movable(tr Trace, t int) int {
	if tr.Stuck >= 0 && time.Duration(t)*time.Second >= tr.StuckFrom {
		return tr.Partitions - 1
	}
	return tr.Partitions
}

// oracleCapacity is what n replicas process at second t in the oracle's world.
func oracleCapacity(w World, tr Trace, n int32, t int) float64 {
	c := float64(min(int(n), movable(tr, t))) * w.Rate
	if tr.SinkLimit > 0 {
		c = min(c, tr.SinkLimit)
	}
	return c
}

// drainLimit is the backlog limit the oracle is held to for a run: the run's own backlog at
// each second, or the drain level when that is higher (a backlog at or below it is drained).
func drainLimit(backlog []float64, level int64) []float64 {
	out := make([]float64, len(backlog))
	for t, b := range backlog {
		out[t] = max(b, float64(level))
	}
	return out
}
