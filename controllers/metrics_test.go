package controllers

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// A poll keeps the series of partitions it saw, drops those that went away, and leaves other
// pipelines' series alone; forgetting a pipeline drops all of its series.
func TestRecordLagDropsOnlyVanishedSeries(t *testing.T) {
	lags := func(ps ...int32) *observation {
		obs := &observation{}
		for _, p := range ps {
			obs.lags = append(obs.lags, scaling.PartitionLag{TopicPartition: scaling.TopicPartition{Topic: "t", Partition: p}, Lag: int64(10 * p)})
			obs.lag += int64(10 * p)
		}
		obs.topics = []kpipev1.TopicStatus{{Name: "t", Partitions: int32(len(ps)), Lag: obs.lag, LagSeconds: 7}}
		return obs
	}
	defer forgetMetrics("metrics-test", "a")
	defer forgetMetrics("metrics-test", "b")
	base := testutil.CollectAndCount(partitionLag)

	recordLag("metrics-test", "a", "ga", lags(0, 1, 2))
	recordLag("metrics-test", "b", "gb", lags(0, 1))
	if got := testutil.CollectAndCount(partitionLag) - base; got != 5 {
		t.Fatalf("series after two pipelines polled: %d, want 5", got)
	}
	recordLag("metrics-test", "a", "ga", lags(0))
	if got := testutil.CollectAndCount(partitionLag) - base; got != 3 {
		t.Fatalf("series after a lost two partitions: %d, want 3", got)
	}
	if v := testutil.ToFloat64(partitionLag.WithLabelValues("metrics-test", "b", "gb", "t", "1")); v != 10 {
		t.Fatalf("b's partition 1 lag: %v, want 10", v)
	}
	if v := testutil.ToFloat64(lagSeconds.WithLabelValues("metrics-test", "b", "t")); v != 7 {
		t.Fatalf("b's lag in seconds on t: %v, want 7", v)
	}
	moved := lags(0)
	moved.lags[0].Topic, moved.topics[0].Name = "u", "u"
	recordLag("metrics-test", "a", "ga", moved) // a reads topic u instead of t
	if got := testutil.CollectAndCount(lagSeconds, "kpipe_pipeline_lag_seconds"); got != 2 {
		t.Fatalf("lag-seconds series after a moved from t to u: %d, want 2 (a/u, b/t)", got)
	}
	forgetMetrics("metrics-test", "b")
	if got := testutil.CollectAndCount(partitionLag) - base; got != 1 {
		t.Fatalf("series after b was forgotten: %d, want 1", got)
	}
}
