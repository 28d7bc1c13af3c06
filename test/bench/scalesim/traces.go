package scalesim

import "time"

// Traces are the traffic patterns of the benchmark. They were written before the first replay
// and are not tuned to any autoscaler.
func Traces() []Trace {
	const base = 600
	step := func(from, to int, level float64) func(int) float64 {
		return func(t int) float64 {
			if t >= from && t < to {
				return level
			}
			return base
		}
	}
	return []Trace{
		{Name: "step burst", Partitions: 12, Duration: 30 * time.Minute, Stuck: -1,
			Traffic: step(120, 420, 5000)},
		{Name: "ramp", Partitions: 12, Duration: 40 * time.Minute, Stuck: -1,
			Traffic: func(t int) float64 {
				switch {
				case t < 60:
					return base
				case t < 960:
					return base + (8000-base)*float64(t-60)/900
				default:
					return base
				}
			}},
		{Name: "spiky", Partitions: 12, Duration: 30 * time.Minute, Stuck: -1,
			Traffic: func(t int) float64 {
				if t < 1200 && t%120 < 15 {
					return 12000
				}
				return base
			}},
		{Name: "steady, one stuck partition", Partitions: 12, Duration: 30 * time.Minute,
			Stuck: 0, StuckFrom: 5 * time.Minute,
			Traffic: func(int) float64 { return 3000 }},
		{Name: "10 partitions, step", Partitions: 10, Duration: 30 * time.Minute, Stuck: -1,
			Traffic: step(120, 600, 7000)},
		// Added with the telemetry: what only the pods can tell the operator.
		{Name: "slow handler (one key, 60 s a message)", Partitions: 12, Duration: 30 * time.Minute, Stuck: -1,
			Traffic: step(300, 600, 3000),
			Slow:    &SlowKey{Partition: 0, From: time.Minute, Every: 30 * time.Second, Takes: time.Minute}},
		{Name: "minReplicas 1, idle rest", Partitions: 12, Duration: 30 * time.Minute, Stuck: -1, Rest: true,
			Traffic: func(t int) float64 {
				switch {
				case t < 300:
					return base
				case t < 480:
					return 0 // the replicas rest from 360 s (idle window 1 m) to 660 s (penalty 5 m)
				case t < 600:
					return 10 // a trickle while they rest: lag, and no commit moving
				case t < 900:
					return 3000
				default:
					return base
				}
			}},
		{Name: "throttling sink (3 000 msg/s in all)", Partitions: 12, Duration: 30 * time.Minute, Stuck: -1,
			SinkLimit: 3000, Traffic: step(120, 420, 5000)},
	}
}

// DefaultWorld is the world of the benchmark: 1000 msg/s per replica with 8 workers,
// lagPerReplica (KEDA's lagThreshold) 1000, 1 to 12 replicas, a 5 s pause per replica count
// change, commits every second, idle window 1 m and penalty 5 m (kpipe's runtime defaults).
func DefaultWorld() World {
	return World{Rate: 1000, Workers: 8, RebalancePause: 5 * time.Second, MinReplicas: 1, MaxReplicas: 12,
		LagPerReplica: 1000, CommitInterval: time.Second, IdleWindow: time.Minute, IdlePenalty: 5 * time.Minute}
}
