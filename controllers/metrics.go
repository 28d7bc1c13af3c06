package controllers

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Operator metrics, served with controller-runtime's own on the manager's /metrics.
var (
	partitionLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kpipe_pipeline_partition_lag",
		Help: "Messages not yet committed by the pipeline's consumer group, per partition.",
	}, []string{"namespace", "pipeline", "group", "topic", "partition"})
	pipelineLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kpipe_pipeline_lag",
		Help: "Messages not yet committed by the pipeline's consumer group, over all its partitions.",
	}, []string{"namespace", "pipeline"})
	lagSeconds = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kpipe_pipeline_lag_seconds",
		Help: "How long the oldest message not yet committed by the pipeline's consumer group has waited, per topic (0 without lag; the pipeline's is the largest). An estimate: see docs/scaling.md, Lag in seconds.",
	}, []string{"namespace", "pipeline", "topic"})
	desiredReplicas = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kpipe_pipeline_desired_replicas",
		Help: "Replica count the operator decided on at the last poll.",
	}, []string{"namespace", "pipeline"})
	stalledPartitions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kpipe_pipeline_stalled_partitions",
		Help: "Stuck partitions: lag, a committed offset that has not moved for several polls, and the pod reports it retrying, blocked on the dead-letter topic, or not busy (or reports nothing).",
	}, []string{"namespace", "pipeline"})
	pollDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kpipe_lag_poll_duration_seconds",
		Help:    "Time to read partition counts and offsets from Kafka for one pipeline.",
		Buckets: prometheus.ExponentialBuckets(0.001, 3, 10),
	}, []string{"result"})
	statusWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kpipe_status_writes_total",
		Help: "Status writes of all pipelines (result written), and status changes of lag alone not written yet (lag-deferred: not due; lag-over-cap: due, over the cap on such writes).",
	}, []string{"result"})
	kafkaErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kpipe_kafka_errors_total",
		Help: "Failed reads of Kafka, by pipeline and reason.",
	}, []string{"namespace", "pipeline", "reason"})
)

func init() {
	metrics.Registry.MustRegister(partitionLag, pipelineLag, lagSeconds, desiredReplicas, stalledPartitions, pollDuration, statusWrites, kafkaErrors)
}

// partitionSeries remembers the partition-lag series of each pipeline ({group, topic,
// partition} by "namespace/name"), so that a poll deletes only the series that went away
// instead of scanning every series of every pipeline.
var (
	partitionSeriesMu sync.Mutex
	partitionSeries   = map[string]map[[3]string]bool{}
)

func recordLag(ns, name, group string, obs *observation) {
	now := make(map[[3]string]bool, len(obs.lags))
	for _, pl := range obs.lags {
		l := [3]string{group, pl.Topic, strconv.Itoa(int(pl.Partition))}
		now[l] = true
		partitionLag.WithLabelValues(ns, name, l[0], l[1], l[2]).Set(float64(pl.Lag))
	}
	partitionSeriesMu.Lock()
	before := partitionSeries[ns+"/"+name]
	partitionSeries[ns+"/"+name] = now
	partitionSeriesMu.Unlock()
	gone := map[string]bool{}
	for l := range before {
		if !now[l] {
			partitionLag.DeleteLabelValues(ns, name, l[0], l[1], l[2])
			gone[l[1]] = true
		}
	}
	for _, t := range obs.topics {
		delete(gone, t.Name)
		lagSeconds.WithLabelValues(ns, name, t.Name).Set(float64(t.LagSeconds))
	}
	for t := range gone { // a topic the pipeline no longer reads
		lagSeconds.DeleteLabelValues(ns, name, t)
	}
	pipelineLag.WithLabelValues(ns, name).Set(float64(obs.lag))
	stalledPartitions.WithLabelValues(ns, name).Set(float64(len(obs.stalled)))
}

func forgetMetrics(ns, name string) {
	partitionSeriesMu.Lock()
	delete(partitionSeries, ns+"/"+name)
	partitionSeriesMu.Unlock()
	l := prometheus.Labels{"namespace": ns, "pipeline": name}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{partitionLag, pipelineLag, lagSeconds, desiredReplicas, stalledPartitions, kafkaErrors} {
		v.DeletePartialMatch(l)
	}
}
