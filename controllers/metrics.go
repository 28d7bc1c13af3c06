package controllers

import (
	"strconv"

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
	kafkaErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kpipe_kafka_errors_total",
		Help: "Failed reads of Kafka, by pipeline and reason.",
	}, []string{"namespace", "pipeline", "reason"})
)

func init() {
	metrics.Registry.MustRegister(partitionLag, pipelineLag, desiredReplicas, stalledPartitions, pollDuration, kafkaErrors)
}

func recordLag(ns, name, group string, lags []scaling.PartitionLag, total int64, stalled int) {
	partitionLag.DeletePartialMatch(prometheus.Labels{"namespace": ns, "pipeline": name})
	for _, pl := range lags {
		partitionLag.WithLabelValues(ns, name, group, pl.Topic, strconv.Itoa(int(pl.Partition))).Set(float64(pl.Lag))
	}
	pipelineLag.WithLabelValues(ns, name).Set(float64(total))
	stalledPartitions.WithLabelValues(ns, name).Set(float64(stalled))
}

func forgetMetrics(ns, name string) {
	l := prometheus.Labels{"namespace": ns, "pipeline": name}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{partitionLag, pipelineLag, desiredReplicas, stalledPartitions, kafkaErrors} {
		v.DeletePartialMatch(l)
	}
}
