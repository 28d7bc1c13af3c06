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
	}
}

// DefaultWorld is the world of the benchmark: 1000 msg/s per replica, lagPerReplica (KEDA's
// lagThreshold) 1000, 1 to 12 replicas, a 5 s pause per replica count change, commits every
// second (kpipe's runtime default).
func DefaultWorld() World {
	return World{Rate: 1000, RebalancePause: 5 * time.Second, MinReplicas: 1, MaxReplicas: 12, LagPerReplica: 1000,
		CommitInterval: time.Second}
}
