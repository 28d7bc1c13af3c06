package controllers

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// StatusLagWrites decides when a change of lag alone is written to a pipeline's status. Any
// other change (a condition's status or reason, replicas, partitions, topics, scale time,
// observed generation, idle since) is written by the reconcile that makes it. Lag is in the
// operator's metrics on every poll; the status carries a recent value, not the latest, so
// that thousands of pipelines whose lag moves every poll do not cost thousands of API writes.
//
// A change is "lag alone" when the status differs from the stored one only in status.lag,
// status.topics[].lag, their lagSeconds and the messages of conditions that kept their status
// and reason (the messages quote the lag).
type StatusLagWrites struct {
	// Share: lag that moved by more than this share of the stored value (any move from 0)
	// is written once MinInterval has passed since the pipeline's last status write.
	// Default 0.5.
	Share float64
	// MinInterval is the least time between status writes that only change lag. Default 1m.
	MinInterval time.Duration
	// Refresh: lag that moved at all is written once this much time has passed since the
	// pipeline's last status write. Default 10m.
	Refresh time.Duration
	// PerSecond caps the lag-only writes of all pipelines together, with a burst of as many;
	// a write over the cap waits for a later poll. Default 10, a fifth of `kpipe manager`'s
	// default --kube-api-qps, so that 10 000 pipelines leave most of the client's rate to
	// the writes that change more than lag.
	PerSecond float64

	once    sync.Once
	limiter *rate.Limiter
}

func (w *StatusLagWrites) defaults() {
	w.once.Do(func() {
		if w.Share <= 0 {
			w.Share = 0.5
		}
		if w.MinInterval <= 0 {
			w.MinInterval = time.Minute
		}
		if w.Refresh <= 0 {
			w.Refresh = 10 * time.Minute
		}
		if w.PerSecond <= 0 {
			w.PerSecond = 10
		}
		w.limiter = rate.NewLimiter(rate.Limit(w.PerSecond), max(1, int(w.PerSecond)))
	})
}

// due reports whether the new status is to be written over the stored one, given when this
// process last wrote the pipeline's status (zero: not since it started).
func (w *StatusLagWrites) due(stored, next *kpipev1.KafkaPipelineStatus, lastWrite, now time.Time) bool {
	if equality.Semantic.DeepEqual(stored, next) {
		return false
	}
	if !lagOnly(stored, next) {
		return true
	}
	w.defaults()
	since := now.Sub(lastWrite)
	if lastWrite.IsZero() {
		since = w.Refresh
	}
	ok := since >= w.Refresh || (since >= w.MinInterval && lagMoved(stored, next, w.Share))
	if ok && !w.limiter.Allow() {
		statusWrites.WithLabelValues("lag-over-cap").Inc()
		return false
	}
	if !ok {
		statusWrites.WithLabelValues("lag-deferred").Inc()
	}
	return ok
}

// lagOnly reports whether next differs from stored in lag alone (see StatusLagWrites).
func lagOnly(stored, next *kpipev1.KafkaPipelineStatus) bool {
	n := next.DeepCopy()
	n.Lag, n.LagSeconds = stored.Lag, stored.LagSeconds
	if len(n.Topics) != len(stored.Topics) {
		return false
	}
	for i := range n.Topics {
		n.Topics[i].Lag, n.Topics[i].LagSeconds = stored.Topics[i].Lag, stored.Topics[i].LagSeconds
	}
	for i := range n.Conditions {
		c := &n.Conditions[i]
		for _, s := range stored.Conditions {
			if s.Type == c.Type && s.Status == c.Status && s.Reason == c.Reason && s.ObservedGeneration == c.ObservedGeneration {
				c.Message = s.Message
			}
		}
	}
	return equality.Semantic.DeepEqual(stored, n)
}

// lagMoved reports whether the total lag or a topic's lag, in messages or in seconds, moved
// by more than share of its stored value.
func lagMoved(stored, next *kpipev1.KafkaPipelineStatus, share float64) bool {
	moved := func(a, b int64) bool { return float64(abs(b-a)) > share*float64(a) }
	if moved(stored.Lag, next.Lag) || moved(stored.LagSeconds, next.LagSeconds) {
		return true
	}
	for i := range next.Topics {
		if moved(stored.Topics[i].Lag, next.Topics[i].Lag) || moved(stored.Topics[i].LagSeconds, next.Topics[i].LagSeconds) {
			return true
		}
	}
	return false
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// peekState is the pipeline's state, or nil when it has none (it is not created here).
func (r *KafkaPipelineReconciler) peekState(key types.NamespacedName) *pipelineState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.states[key]
}
