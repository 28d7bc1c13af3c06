package runtime

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Results of a message, the "result" label of kpipe_messages_processed_total.
const (
	resultOK           = "ok"            // the processor succeeded
	resultDeadLettered = "dead_lettered" // written to the dead-letter topic
	resultAbandoned    = "abandoned"     // given up at revocation or shutdown; it will be redelivered
)

// metrics are the runtime's Prometheus metrics, on a registry of their own.
type metrics struct {
	registry     *prometheus.Registry
	constLabels  prometheus.Labels // pipeline and namespace
	consumed     *prometheus.CounterVec
	finished     *finishedMetrics // processed_total, in_flight, processing_seconds (finished.go)
	retries      prometheus.Counter
	deadLettered prometheus.Counter
	stalled      prometheus.Gauge
	paused       prometheus.Gauge
	committed    *prometheus.GaugeVec
	idle         prometheus.Gauge
	idlePeriods  prometheus.Counter
	session      prometheus.Gauge
	transactions *prometheus.CounterVec // ExactlyOnce: by result, committed or aborted
}

func newMetrics(name, namespace string) *metrics {
	labels := prometheus.Labels{}
	if name != "" {
		labels["pipeline"] = name
	}
	if namespace != "" {
		labels["namespace"] = namespace
	}
	m := &metrics{
		registry:    prometheus.NewRegistry(),
		constLabels: labels,
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kpipe_messages_consumed_total", Help: "Messages read from Kafka and handed to the worker pool.", ConstLabels: labels,
		}, []string{"topic"}),
		finished: newFinishedMetrics(labels),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kpipe_retries_total", Help: "Attempts that failed and were retried.", ConstLabels: labels,
		}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kpipe_dead_lettered_total", Help: "Messages written to the dead-letter topic.", ConstLabels: labels,
		}),
		stalled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kpipe_messages_stalled", Help: "Messages past retry.maxAttempts with no dead-letter topic, retried until they succeed; their partitions do not advance.", ConstLabels: labels,
		}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kpipe_partitions_paused", Help: "Partitions whose fetching is paused behind a message that has not finished: too many of their offsets are tracked (WithMaxUncommitted), or their messages waiting in lanes hold their share of the pool.", ConstLabels: labels,
		}),
		committed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kpipe_committed_offset", Help: "Offset last committed for a partition this replica owns (the next offset to consume).", ConstLabels: labels,
		}, []string{"topic", "partition"}),
		idle: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kpipe_idle", Help: "1 while the consumer is stopped for the idle penalty, else 0.", ConstLabels: labels,
		}),
		idlePeriods: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kpipe_idle_periods_total", Help: "Idle penalties served: times the consumer stopped after an idle window.", ConstLabels: labels,
		}),
		session: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kpipe_consumer_session_active", Help: "1 while a consumer group session is active, else 0.", ConstLabels: labels,
		}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kpipe_transactions_total", Help: "ExactlyOnce transactions ended, by result: committed, aborted (their messages are consumed again).", ConstLabels: labels,
		}, []string{"result"}),
	}
	m.registry.MustRegister(m.consumed, m.finished, m.retries, m.deadLettered, m.stalled, m.paused,
		m.committed, m.idle, m.idlePeriods, m.session, m.transactions,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) setCommitted(topic string, partition int32, offset int64) {
	m.committed.WithLabelValues(topic, strconv.Itoa(int(partition))).Set(float64(offset))
}
