package controllers

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kpipe-io/kpipe/controllers/scaling"
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
	desiredReplicas = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kpipe_pipeline_desired_replicas",
		Help: "Replica count the operator decided on at the last poll.",
	}, []string{"namespace", "pipeline"})
	stalledPartitions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kpipe_pipeline_stalled_partitions",
		Help: "Partitions with lag whose committed offset has not moved for several polls.",
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
	metrics.Registry.MustRegister(partitionLag, pipelineLag, desiredReplicas, stalledPartitions, pollDuration, statusWrites, kafkaErrors)
}

// partitionSeries remembers the partition-lag series of each pipeline ({group, topic,
// partition} by "namespace/name"), so that a poll deletes only the series that went away
// instead of scanning every series of every pipeline.
var (
	partitionSeriesMu sync.Mutex
	partitionSeries   = map[string]map[[3]string]bool{}
)

func recordLag(ns, name, group string, lags []scaling.PartitionLag, total int64, stalled int) {
	now := make(map[[3]string]bool, len(lags))
	for _, pl := range lags {
		l := [3]string{group, pl.Topic, strconv.Itoa(int(pl.Partition))}
		now[l] = true
		partitionLag.WithLabelValues(ns, name, l[0], l[1], l[2]).Set(float64(pl.Lag))
	}
	partitionSeriesMu.Lock()
	before := partitionSeries[ns+"/"+name]
	partitionSeries[ns+"/"+name] = now
	partitionSeriesMu.Unlock()
	for l := range before {
		if !now[l] {
			partitionLag.DeleteLabelValues(ns, name, l[0], l[1], l[2])
		}
	}
	pipelineLag.WithLabelValues(ns, name).Set(float64(total))
	stalledPartitions.WithLabelValues(ns, name).Set(float64(stalled))
}

func forgetMetrics(ns, name string) {
	partitionSeriesMu.Lock()
	delete(partitionSeries, ns+"/"+name)
	partitionSeriesMu.Unlock()
	l := prometheus.Labels{"namespace": ns, "pipeline": name}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{partitionLag, pipelineLag, desiredReplicas, stalledPartitions, kafkaErrors} {
		v.DeletePartialMatch(l)
	}
}
