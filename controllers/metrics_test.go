package controllers

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// A poll keeps the series of partitions it saw, drops those that went away, and leaves other
// pipelines' series alone; forgetting a pipeline drops all of its series.
func TestRecordLagDropsOnlyVanishedSeries(t *testing.T) {
	lags := func(ps ...int32) []scaling.PartitionLag {
		var out []scaling.PartitionLag
		for _, p := range ps {
			out = append(out, scaling.PartitionLag{TopicPartition: scaling.TopicPartition{Topic: "t", Partition: p}, Lag: int64(10 * p)})
		}
		return out
	}
	defer forgetMetrics("metrics-test", "a")
	defer forgetMetrics("metrics-test", "b")
	base := testutil.CollectAndCount(partitionLag)

	recordLag("metrics-test", "a", "ga", lags(0, 1, 2), 30, 0)
	recordLag("metrics-test", "b", "gb", lags(0, 1), 10, 0)
	if got := testutil.CollectAndCount(partitionLag) - base; got != 5 {
		t.Fatalf("series after two pipelines polled: %d, want 5", got)
	}
	recordLag("metrics-test", "a", "ga", lags(0), 0, 0)
	if got := testutil.CollectAndCount(partitionLag) - base; got != 3 {
		t.Fatalf("series after a lost two partitions: %d, want 3", got)
	}
	if v := testutil.ToFloat64(partitionLag.WithLabelValues("metrics-test", "b", "gb", "t", "1")); v != 10 {
		t.Fatalf("b's partition 1 lag: %v, want 10", v)
	}
	forgetMetrics("metrics-test", "b")
	if got := testutil.CollectAndCount(partitionLag) - base; got != 1 {
		t.Fatalf("series after b was forgotten: %d, want 1", got)
	}
}
