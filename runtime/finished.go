package runtime

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyBounds are the upper bounds of kpipe_processing_seconds's buckets: 0.5 ms to 65 s.
var latencyBounds = prometheus.ExponentialBuckets(0.0005, 2, latencyBucketCount)

const latencyBucketCount = 18

// results are the values of kpipe_messages_processed_total's result label, in the order
// of finishedTally.results.
var results = [...]string{resultIndexOK: resultOK, resultIndexDeadLettered: resultDeadLettered, resultIndexAbandoned: resultAbandoned}

// The indexes of the results in finishedTally.results.
const (
	resultIndexOK = iota
	resultIndexDeadLettered
	resultIndexAbandoned
)

// resultIndex is the index of result in finishedTally.results.
func resultIndex(result string) int {
	switch result {
	case resultOK:
		return resultIndexOK
	case resultDeadLettered:
		return resultIndexDeadLettered
	default:
		return resultIndexAbandoned
	}
}

// finishedTally is what one partition's finished messages add to the metrics:
// kpipe_messages_processed_total by result, and kpipe_processing_seconds. The partition
// keeps it under its lock, which finishing a message takes anyway (partition.go).
type finishedTally struct {
	results [len(results)]uint64
	count   uint64                         // messages observed in the latency histogram
	sum     float64                        // their seconds
	buckets [latencyBucketCount + 1]uint64 // by the first bound at or above their seconds; the last is +Inf
}

// observe counts one message finished with result after took.
func (t *finishedTally) observe(result int, took time.Duration) {
	t.results[result]++
	s := took.Seconds()
	t.count++
	t.sum += s
	i := 0
	for i < len(latencyBounds) && s > latencyBounds[i] {
		i++
	}
	t.buckets[i]++
}

// finished is the messages finished, dead letters included, not those given up on.
func (t *finishedTally) finished() int64 {
	return int64(t.results[resultIndexOK] + t.results[resultIndexDeadLettered])
}

// add adds o to t.
func (t *finishedTally) add(o *finishedTally) {
	for i := range t.results {
		t.results[i] += o.results[i]
	}
	t.count += o.count
	t.sum += o.sum
	for i := range t.buckets {
		t.buckets[i] += o.buckets[i]
	}
}

// finishedMetrics collects kpipe_messages_processed_total, kpipe_messages_in_flight and
// kpipe_processing_seconds, the metrics every message changes, from the partitions'
// tallies and in-flight counts, when they are scraped.
//
// Shared Prometheus counters, gauges and histograms cost an atomic operation each per
// message on memory that every worker writes: with them, BenchmarkConsume read 0.88x the
// messages per second and used 1.16x the CPU per message (8 interleaved pairs).
//
// A partition is collected from newPartition until it is released with no message in
// flight; its tally then joins gone. A released partition with messages still running
// (past the drain timeout) stays until they finish, so the counters never go back.
type finishedMetrics struct {
	processed, inFlight, latency *prometheus.Desc

	mu       sync.Mutex
	live     map[*partition]struct{}
	released map[*partition]struct{} // of live, those released with messages still in flight
	gone     finishedTally           // of the partitions no longer live
}

func newFinishedMetrics(labels prometheus.Labels) *finishedMetrics {
	return &finishedMetrics{
		processed: prometheus.NewDesc("kpipe_messages_processed_total",
			"Messages finished, by result: ok, dead_lettered, abandoned (redelivered later).", []string{"result"}, labels),
		inFlight: prometheus.NewDesc("kpipe_messages_in_flight",
			"Messages consumed and not yet finished.", nil, labels),
		latency: prometheus.NewDesc("kpipe_processing_seconds",
			"Time from consuming a message to finishing it, retries and acks included.", nil, labels),
		live:     map[*partition]struct{}{},
		released: map[*partition]struct{}{},
	}
}

// add starts collecting pt.
func (f *finishedMetrics) add(pt *partition) {
	f.mu.Lock()
	f.live[pt] = struct{}{}
	f.mu.Unlock()
}

// release stops collecting pt, released (closed), once nothing of it is in flight, and the
// partitions released before it whose last messages have finished since; their tallies
// are kept. The live partitions stay those of the current assignment and the few released
// with messages still running, and a release looks only at the latter.
func (f *finishedMetrics) release(pt *partition) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released[pt] = struct{}{}
	for r := range f.released {
		r.mu.Lock()
		if r.closed && r.inFlight == 0 {
			f.gone.add(&r.fin)
			delete(f.live, r)
			delete(f.released, r)
		}
		r.mu.Unlock()
	}
}

// totals sums the tallies and the messages in flight.
func (f *finishedMetrics) totals() (finishedTally, int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, inFlight := f.gone, int64(0)
	for pt := range f.live {
		pt.mu.Lock()
		t.add(&pt.fin)
		inFlight += int64(pt.inFlight)
		pt.mu.Unlock()
	}
	return t, inFlight
}

func (f *finishedMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- f.processed
	ch <- f.inFlight
	ch <- f.latency
}

func (f *finishedMetrics) Collect(ch chan<- prometheus.Metric) {
	t, inFlight := f.totals()
	for i, r := range results {
		ch <- prometheus.MustNewConstMetric(f.processed, prometheus.CounterValue, float64(t.results[i]), r)
	}
	ch <- prometheus.MustNewConstMetric(f.inFlight, prometheus.GaugeValue, float64(inFlight))
	cumulative := make(map[float64]uint64, len(latencyBounds))
	n := uint64(0)
	for i, b := range latencyBounds {
		n += t.buckets[i]
		cumulative[b] = n
	}
	ch <- prometheus.MustNewConstHistogram(f.latency, t.count, t.sum, cumulative)
}
