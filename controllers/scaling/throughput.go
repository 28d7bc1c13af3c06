package scaling

import "time"

// ThroughputMemory is how long a measured capacity is remembered per replica count; the
// evidence of a throughput ceiling lasts as long.
const ThroughputMemory = 15 * time.Minute

// ceilingDrop is how much lower the measured per-replica capacity at a higher replica count
// must be, against a lower count, to say that more replicas stopped adding throughput. Above
// it, differences are taken for noise (other pods on the node, message sizes).
const ceilingDrop = 0.75

// ThroughputSample is the per-replica capacity the pods reported while Replicas ran.
type ThroughputSample struct {
	Time       time.Time
	Replicas   int32
	PerReplica float64
}

// Throughput remembers the measured per-replica capacity at each replica count, the latest
// measurement of each count within ThroughputMemory, newest last. A measured capacity is not
// a lower bound like Capacity's samples: the pods report how fast a replica processes when it
// works (processed rate over busy fraction), so the latest one is used as is. Keeping one per
// count shows what the commit rate cannot: whether more replicas made each one slower. If
// they did (a sink that throttles: the total stays flat and each replica waits longer), the
// total is a ceiling, and replicas beyond those that reach it add nothing.
type Throughput []ThroughputSample

// Observe records the capacity measured at now with replicas running (0 or less: nothing
// measured) and forgets what is older than ThroughputMemory.
func (t Throughput) Observe(now time.Time, replicas int32, perReplica float64) Throughput {
	out := make(Throughput, 0, len(t)+1)
	for _, s := range t {
		if now.Sub(s.Time) < ThroughputMemory && (s.Replicas != replicas || perReplica <= 0) {
			out = append(out, s)
		}
	}
	if perReplica > 0 && replicas > 0 {
		out = append(out, ThroughputSample{Time: now, Replicas: replicas, PerReplica: perReplica})
	}
	return out
}

// Estimate is the per-replica capacity to plan with (Input.MeasuredCapacity) and the
// throughput ceiling (Input.MaxThroughput), both 0 when unknown. Without a ceiling the
// capacity is the latest measurement. With one, a count was measured at less than ceilingDrop
// of the capacity of a lower count: the ceiling is the highest total measured (replicas x
// capacity), and the capacity the best measured below the first count that hit it (what one
// replica does while the ceiling does not hold it).
func (t Throughput) Estimate(now time.Time) (perReplica, ceiling float64) {
	var live Throughput
	for _, s := range t {
		if now.Sub(s.Time) < ThroughputMemory {
			live = append(live, s)
		}
	}
	if len(live) == 0 {
		return 0, 0
	}
	held := int32(0) // the fewest replicas measured slower than a lower count
	var best float64 // the best capacity below held
	for _, hi := range live {
		for _, lo := range live {
			if lo.Replicas < hi.Replicas && hi.PerReplica < ceilingDrop*lo.PerReplica && (held == 0 || hi.Replicas < held) {
				held = hi.Replicas
			}
		}
	}
	if held == 0 {
		return live[len(live)-1].PerReplica, 0
	}
	for _, s := range live {
		if s.Replicas < held {
			best = max(best, s.PerReplica)
		}
		ceiling = max(ceiling, float64(s.Replicas)*s.PerReplica)
	}
	return best, ceiling
}
