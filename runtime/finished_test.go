package runtime

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
	dto "github.com/prometheus/client_model/go"
)

// scraped is the value of the runtime metric name as m's registry serves it: of its series
// with result="result" when result is not empty.
func scraped(t testing.TB, m *metrics, name, result string) float64 {
	t.Helper()
	for _, mf := range gather(t, m) {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			if result != "" && labelOf(s, "result") != result {
				continue
			}
			switch {
			case s.GetCounter() != nil:
				return s.GetCounter().GetValue()
			case s.GetGauge() != nil:
				return s.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{result=%q} not served", name, result)
	return 0
}

func gather(t testing.TB, m *metrics) []*dto.MetricFamily {
	t.Helper()
	mfs, err := m.registry.Gather()
	if err != nil {
		t.Fatalf("gathering the metrics: %v", err)
	}
	return mfs
}

func labelOf(s *dto.Metric, name string) string {
	for _, l := range s.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// latencyScraped is kpipe_processing_seconds as served: its count, sum and cumulative
// bucket counts by upper bound.
func latencyScraped(t *testing.T, m *metrics) (uint64, float64, map[float64]uint64) {
	t.Helper()
	for _, mf := range gather(t, m) {
		if mf.GetName() == "kpipe_processing_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			buckets := map[float64]uint64{}
			for _, b := range h.GetBucket() {
				buckets[b.GetUpperBound()] = b.GetCumulativeCount()
			}
			return h.GetSampleCount(), h.GetSampleSum(), buckets
		}
	}
	t.Fatal("kpipe_processing_seconds not served")
	return 0, 0, nil
}

// admitted is a partition of m with n messages admitted (offsets 0 to n-1).
func admitted(t *testing.T, m *metrics, id int32, n int) *partition {
	t.Helper()
	pt := newPartition(context.Background(), nil, nil, ackClaim{id: id}, slog.New(slog.NewTextHandler(io.Discard, nil)), m)
	ms := make([]*sarama.ConsumerMessage, n)
	sizes := make([]int64, n)
	for o := range ms {
		ms[o] = &sarama.ConsumerMessage{Topic: "in", Partition: id, Offset: int64(o)}
	}
	if got, _ := pt.addAll(ms, sizes, time.Now()); got != n {
		t.Fatalf("%d messages admitted, want %d", got, n)
	}
	return pt
}

// The metrics of finished messages are summed from the partitions when scraped: results,
// in flight, and the latency histogram with its buckets, count and sum.
func TestFinishedMetricsSumPartitions(t *testing.T) {
	m := newMetrics("p", "ns")
	a, b := admitted(t, m, 0, 4), admitted(t, m, 1, 3)
	a.complete(0, resultIndexOK, 200*time.Microsecond)
	a.complete(1, resultIndexOK, 3*time.Millisecond)
	a.complete(2, resultIndexDeadLettered, 100*time.Second) // dead-lettered, past the last bound
	b.abandon(0)
	b.complete(1, resultIndexOK, time.Millisecond) // at a bound: counted in it, as Prometheus does

	for name, want := range map[string]float64{resultOK: 3, resultDeadLettered: 1, resultAbandoned: 1} {
		if got := scraped(t, m, "kpipe_messages_processed_total", name); got != want {
			t.Errorf("processed %s: %v, want %v", name, got, want)
		}
	}
	if got := scraped(t, m, "kpipe_messages_in_flight", ""); got != 2 {
		t.Errorf("in flight: %v, want 2 (a's offset 3, b's offset 2)", got)
	}
	count, sum, buckets := latencyScraped(t, m)
	if count != 4 {
		t.Errorf("latency count %d, want 4 (abandoned messages are not observed)", count)
	}
	if want := 100.0042; sum < want-1e-9 || sum > want+1e-9 {
		t.Errorf("latency sum %v, want %v", sum, want)
	}
	for bound, want := range map[float64]uint64{0.0005: 1, 0.001: 2, 0.002: 2, 0.004: 3, 65.536: 3} {
		if buckets[bound] != want {
			t.Errorf("latency bucket le=%v: %d, want %d", bound, buckets[bound], want)
		}
	}
}

// A released partition is still collected while messages of it run (past the drain
// timeout), and folded into the totals once they are done: the counters never go back,
// and the live partitions stay those with something to report.
func TestFinishedMetricsKeepReleasedPartitions(t *testing.T) {
	m := newMetrics("p", "ns")
	pt := admitted(t, m, 0, 2)
	pt.complete(0, resultIndexOK, time.Millisecond)
	pt.close()
	m.finished.release(pt)
	if got := scraped(t, m, "kpipe_messages_in_flight", ""); got != 1 {
		t.Errorf("in flight after release: %v, want 1 (offset 1 still runs)", got)
	}
	pt.complete(1, resultIndexOK, time.Millisecond) // finishes after its partition was released
	other := admitted(t, m, 1, 0)
	other.close()
	m.finished.release(other) // the next release also lets go of pt
	if n := len(m.finished.live); n != 0 {
		t.Errorf("%d partitions still collected after the last finished, want 0", n)
	}
	if got := scraped(t, m, "kpipe_messages_processed_total", resultOK); got != 2 {
		t.Errorf("processed ok: %v, want 2", got)
	}
	if got := scraped(t, m, "kpipe_messages_in_flight", ""); got != 0 {
		t.Errorf("in flight: %v, want 0", got)
	}
	next := admitted(t, m, 0, 1) // the partition claimed again
	next.complete(0, resultIndexOK, time.Millisecond)
	if got := scraped(t, m, "kpipe_messages_processed_total", resultOK); got != 3 {
		t.Errorf("processed ok after the partition came back: %v, want 3", got)
	}
}
