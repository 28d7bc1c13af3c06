package scalesim

import (
	"math"
	"time"

	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// Keda models KEDA's Kafka scaler feeding the Kubernetes HPA, from their documented rules:
//
//   - the scaler's metric is the total lag, the sum of newest - committed over the partitions;
//     a stuck partition's lag counts (excludePersistentLag is off by default);
//   - with ensureEvenDistributionOfPartitions the metric becomes f * lagThreshold, f the smallest
//     factor of the partition count with f * lagThreshold >= total lag (the count is rounded
//     up to a divisor of the partition count);
//   - without allowIdleConsumers the metric is capped at partitions * lagThreshold;
//   - the HPA reads the metric every SyncPeriod (15 s); the target is an AverageValue of
//     lagThreshold per replica, so it wants ceil(metric / lagThreshold), unless the ratio
//     metric / (lagThreshold * current) is within Tolerance (10%) of 1, when it keeps current;
//   - scale-up is limited per sync to the larger of doubling and +4 pods (the HPA's default
//     scale-up policies); scale-down takes the highest recommendation of the last
//     ScaleDownStabilization (300 s);
//   - KEDA itself polls every PollingInterval (30 s) to activate a target at zero; above
//     zero (minReplicaCount >= 1, as here) its polling does not gate the HPA, which queries
//     the scaler on each sync.
type Keda struct {
	LagThreshold           int64
	MinReplicas            int32
	MaxReplicas            int32
	PollingInterval        time.Duration
	SyncPeriod             time.Duration
	Tolerance              float64
	ScaleDownStabilization time.Duration
	EvenDistribution       bool

	lastSync time.Time
	recs     []scaling.Recommendation
}

// NewKeda returns the model with KEDA's and the HPA's defaults and the given bounds.
func NewKeda(lagThreshold int64, minReplicas, maxReplicas int32) *Keda {
	return &Keda{
		LagThreshold: lagThreshold, MinReplicas: minReplicas, MaxReplicas: maxReplicas,
		PollingInterval: 30 * time.Second, SyncPeriod: 15 * time.Second, Tolerance: 0.1,
		ScaleDownStabilization: 300 * time.Second, EvenDistribution: true,
	}
}

// Metric is the value the Kafka scaler reports for these offsets.
func (k *Keda) Metric(offsets []scaling.Offsets) int64 {
	var total int64
	for _, o := range offsets {
		if o.Committed >= 0 && o.Newest > o.Committed {
			total += o.Newest - o.Committed
		}
	}
	partitions := int64(len(offsets))
	if k.EvenDistribution {
		f := partitions
		for _, d := range divisors(partitions) {
			if d*k.LagThreshold >= total {
				f = d
				break
			}
		}
		total = f * k.LagThreshold
	}
	if total/k.LagThreshold > partitions {
		total = partitions * k.LagThreshold
	}
	return total
}

// divisors returns the divisors of n in increasing order.
func divisors(n int64) []int64 {
	var out []int64
	for d := int64(1); d <= n; d++ {
		if n%d == 0 {
			out = append(out, d)
		}
	}
	return out
}

// Desired is the HPA's recommendation for a metric value at current replicas, before
// stabilization and rate limits.
func (k *Keda) Desired(metric int64, current int32) int32 {
	if current > 0 {
		ratio := float64(metric) / (float64(k.LagThreshold) * float64(current))
		if math.Abs(ratio-1) <= k.Tolerance {
			return current
		}
	}
	return int32(math.Ceil(float64(metric) / float64(k.LagThreshold)))
}

// Step implements Autoscaler.
func (k *Keda) Step(now time.Time, offsets []scaling.Offsets, current int32) int32 {
	if !k.lastSync.IsZero() && now.Sub(k.lastSync) < k.SyncPeriod {
		return current
	}
	k.lastSync = now
	desired := min(max(k.Desired(k.Metric(offsets), current), k.MinReplicas), k.MaxReplicas)

	// Scale-down stabilization: the highest recommendation within the window.
	kept := k.recs[:0]
	for _, r := range k.recs {
		if now.Sub(r.Time) < k.ScaleDownStabilization {
			kept = append(kept, r)
		}
	}
	kept = append(kept, scaling.Recommendation{Time: now, Replicas: desired})
	k.recs = kept
	next := desired
	if next < current {
		for _, r := range k.recs {
			next = max(next, r.Replicas)
		}
		next = min(next, current)
	}
	// Scale-up rate limit: 100% or 4 pods per period, whichever allows more.
	if limit := max(2*current, current+4); next > limit {
		next = limit
	}
	return next
}
