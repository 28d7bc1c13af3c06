package runtime

import (
	"time"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// settings are the values the stages run by, resolved once from the spec (defaulted and
// validated) and the options when the Pipeline is created. No stage reads cfg.Spec.
type settings struct {
	brokers []string
	topics  []string
	group   string

	strategy kpipev1.RebalanceStrategy // spec.kafka.rebalanceStrategy

	poolSize int // spec.pool.size, or GOMAXPROCS when unset
	buffer   int
	ordering kpipev1.Ordering

	maxAttempts    int
	initialBackoff time.Duration
	maxBackoff     time.Duration

	forwardTopic    string // "" unless the processor is forward
	exactlyOnce     bool   // processor.forward.delivery ExactlyOnce: see transaction
	deadLetterTopic string // "" without spec.deadLetter

	idleWindow  time.Duration
	idlePenalty time.Duration

	drainTimeout    time.Duration // a revoked partition's wait for its messages in flight
	shutdownTimeout time.Duration // the grace period after Run's context ends
	commitInterval  time.Duration
	producerWindow  int // messages written and not yet acknowledged
	// maxUncommitted is the offsets a partition tracks beyond its committable one before its
	// fetching pauses (pause.go, WithMaxUncommitted).
	maxUncommitted int

	memory memoryBudget // the bound in bytes of what the stages hold, and its shares
}

func newSettings(cfg *Config, o *options, memory memoryBudget) settings {
	spec := cfg.Spec
	s := settings{
		brokers:         spec.Kafka.BootstrapServers,
		topics:          spec.Topics,
		group:           spec.Group,
		strategy:        spec.Kafka.RebalanceStrategy,
		poolSize:        cfg.PoolSize(),
		buffer:          int(*spec.Pool.Buffer),
		ordering:        spec.Pool.Ordering,
		maxAttempts:     int(*spec.Retry.MaxAttempts),
		initialBackoff:  spec.Retry.InitialBackoff.Duration,
		maxBackoff:      spec.Retry.MaxBackoff.Duration,
		idleWindow:      spec.Idle.Window.Duration,
		idlePenalty:     spec.Idle.Penalty.Duration,
		drainTimeout:    o.drainTimeout,
		shutdownTimeout: o.shutdownTimeout,
		commitInterval:  o.commitInterval,
		producerWindow:  o.producerWindow,
		maxUncommitted:  max(o.maxUncommitted, 2*(int(*spec.Pool.Buffer)+cfg.PoolSize())),
		memory:          memory,
	}
	if spec.Processor.Forward != nil {
		s.forwardTopic = spec.Processor.Forward.Topic
		s.exactlyOnce = spec.Processor.Forward.Delivery == kpipev1.DeliveryExactlyOnce
	}
	if spec.DeadLetter != nil {
		s.deadLetterTopic = spec.DeadLetter.Topic
	}
	return s
}

// produces reports whether the pipeline writes to Kafka: it forwards or has a dead-letter topic.
func (s *settings) produces() bool { return s.forwardTopic != "" || s.deadLetterTopic != "" }

// backoff is the wait after the given failed attempt: initialBackoff doubled per attempt,
// capped at maxBackoff, with equal jitter (between half and all of it).
func (s *settings) backoff(attempt int) time.Duration {
	return jitteredBackoff(attempt, s.initialBackoff, s.maxBackoff)
}
