package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// Pipeline runs one KafkaPipeline: a consumer group feeding a worker pool through a bounded
// buffer, a processor per message, offsets committed only past finished messages, an idle
// penalty, metrics and health. Create it with New and start it with Run.
type Pipeline struct {
	cfg     *Config
	opts    options
	set     settings // resolved from cfg and opts once, in New
	sarama  *sarama.Config
	handler Handler // nil when forwarding
	log     *slog.Logger
	metrics *metrics

	running  atomic.Bool
	sessions atomic.Int32 // consumer group sessions between Setup and Cleanup
	idle     atomic.Bool  // stopped for the idle penalty
	bridge   atomic.Bool  // the group runs an eager strategy: join on it (strategy.go)

	writeFailures writeFailures // ExactlyOnce: failed writes that aborted transactions, per message
}

// Option changes how a Pipeline runs.
type Option func(*options)

type options struct {
	logger          *slog.Logger
	handler         Handler
	shutdownTimeout time.Duration
	drainTimeout    time.Duration
	commitInterval  time.Duration
	producerWindow  int
	maxUncommitted  int
	memoryBudget    int64
	saramaHook      func(*sarama.Config)
	instance        string
}

// WithLogger sets the logger; the default writes JSON to stderr.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithHandler sets the handler of a spec.processor.handler pipeline directly, instead of
// looking spec.processor.handler.name up among the handlers passed to Register.
func WithHandler(h Handler) Option { return func(o *options) { o.handler = h } }

// WithShutdownTimeout bounds how long Run keeps finishing messages in flight after its
// context ends (default 25s, below a pod's 30s termination grace period). What is not
// finished by then is abandoned, uncommitted, and consumed again by the next owner.
func WithShutdownTimeout(d time.Duration) Option { return func(o *options) { o.shutdownTimeout = d } }

// WithDrainTimeout bounds how long a revoked partition waits for its messages in flight
// before it is released (default 10s).
func WithDrainTimeout(d time.Duration) Option { return func(o *options) { o.drainTimeout = d } }

// WithCommitInterval sets how often finished offsets are committed (default 1s). Offsets
// are also committed whenever a partition is released.
func WithCommitInterval(d time.Duration) Option { return func(o *options) { o.commitInterval = d } }

// WithProducerWindow bounds the messages written to Kafka and not yet acknowledged by the
// broker (default 8192; their bytes are bounded by the memory budget as well). The window
// spans sarama's own queues (256 messages per stage and per output partition) as well as
// the batch in flight and the one being filled: a window not much larger than those queues
// keeps the batches small and the forward rate low.
func WithProducerWindow(n int) Option { return func(o *options) { o.producerWindow = n } }

// WithMaxUncommitted bounds the offsets a partition tracks beyond the offset it can commit
// (default 65 536, 24 bytes each; never below twice the pool's buffer and workers). In
// Unordered and Key ordering the messages after one that has not finished (a slow handler,
// a message retried with no dead-letter topic) go on and finish, and each stays tracked until
// the one before it finishes. Once n are, the partition's fetching pauses (sarama's Pause)
// until it finishes, so a message that never does costs bounded memory and holds up only its
// partition.
func WithMaxUncommitted(n int) Option { return func(o *options) { o.maxUncommitted = n } }

// WithMemoryBudget sets the bound in bytes of what the pipeline holds (messages fetched,
// waiting, processed and written), instead of the share of the container's memory limit
// or KPIPE_MEMORY_BUDGET.
func WithMemoryBudget(bytes int64) Option { return func(o *options) { o.memoryBudget = bytes } }

// WithSaramaConfig lets fn adjust the sarama configuration built from the spec, for
// settings the KafkaPipeline API does not cover. fn must keep what the runtime relies on:
// Producer.Return.Successes and Errors, Consumer.Return.Errors, and manual commits.
func WithSaramaConfig(fn func(*sarama.Config)) Option { return func(o *options) { o.saramaHook = fn } }

// WithInstance names the replica in its transactional id in ExactlyOnce, instead of the host
// name (the pod name). Replicas of a pipeline running at the same time need different names.
func WithInstance(name string) Option { return func(o *options) { o.instance = name } }

func (o *options) validate() error {
	switch {
	case o.shutdownTimeout < 0:
		return errors.New("WithShutdownTimeout: must not be negative")
	case o.drainTimeout < 0:
		return errors.New("WithDrainTimeout: must not be negative")
	case o.commitInterval <= 0:
		return errors.New("WithCommitInterval: must be positive")
	case o.producerWindow < 1:
		return errors.New("WithProducerWindow: must be at least 1")
	case o.maxUncommitted < 1:
		return errors.New("WithMaxUncommitted: must be at least 1")
	case o.memoryBudget < 0:
		return errors.New("WithMemoryBudget: must not be negative")
	}
	return nil
}

// New checks that cfg can run (a valid spec, a handler for it, a valid Kafka client
// configuration) without connecting anywhere. It works on a copy of cfg.Spec with the API's
// defaults applied, so a spec built in Go needs only the fields it cares about.
func New(cfg *Config, opts ...Option) (*Pipeline, error) {
	if cfg == nil || cfg.Spec == nil {
		return nil, errors.New("pipeline configuration without a spec")
	}
	c := *cfg
	c.Spec = cfg.Spec.DeepCopy()
	if problems := checkSpec(c.Spec); len(problems) > 0 {
		return nil, &ConfigError{Problems: problems}
	}
	cfg = &c
	o := options{
		shutdownTimeout: 25 * time.Second,
		drainTimeout:    10 * time.Second,
		commitInterval:  time.Second,
		producerWindow:  8192,
		maxUncommitted:  1 << 16,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	explicit := o.memoryBudget
	if b := cfg.Spec.Pool.MemoryBudget; explicit == 0 && b != nil {
		explicit = b.Value()
	}
	memory, err := resolveMemoryBudget(explicit, os.Getenv, hostCgroup)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{cfg: cfg, opts: o, set: newSettings(cfg, &o, memory), metrics: newMetrics(cfg.Name, cfg.Namespace)}
	p.log = o.logger
	if cfg.Name != "" {
		p.log = p.log.With("pipeline", cfg.Name, "namespace", cfg.Namespace)
	}
	if err := p.resolveProcessor(); err != nil {
		return nil, err
	}
	p.reportSpecFields()
	sc, err := p.kafkaConfig()
	if err != nil {
		return nil, err
	}
	p.sarama = sc
	if c := cfg.Credentials; c.SASL != nil && c.SASL.Mechanism == kpipev1.SASLPlain && c.TLS == nil {
		p.log.Warn("SASL PLAIN without TLS sends the password in clear text; set spec.kafka.tls")
	}
	return p, nil
}

// kafkaConfig is the sarama configuration of the spec, made transactional for ExactlyOnce,
// then adjusted by WithSaramaConfig.
func (p *Pipeline) kafkaConfig() (*sarama.Config, error) {
	sc, err := saramaConfig(p.cfg, &p.set.memory)
	if err != nil {
		return nil, err
	}
	if p.set.exactlyOnce {
		applyExactlyOnce(sc, transactionalID(p.set.group, p.opts.instance))
	}
	if hook := p.opts.saramaHook; hook != nil {
		hook(sc)
	}
	fitTimeouts(sc, &p.opts)
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("kafka client configuration: %w", err)
	}
	if p.set.exactlyOnce {
		if err := checkExactlyOnce(sc); err != nil {
			return nil, err
		}
	}
	return sc, nil
}

func (p *Pipeline) resolveProcessor() error {
	switch pr := p.cfg.Spec.Processor; {
	case pr.Forward != nil: // the producer writes to settings.forwardTopic
	case pr.HTTP != nil:
		p.handler = newHTTPHandler(pr.HTTP, p.cfg.HTTPHeaders, p.set.poolSize)
	case pr.Handler != nil:
		p.handler = p.opts.handler
		if p.handler == nil {
			h, err := lookupHandler(pr.Handler.Name)
			if err != nil {
				return err
			}
			p.handler = h
		}
	default:
		return errors.New("spec.processor: exactly one of forward, http or handler must be set")
	}
	return nil
}

// Ready reports whether the pipeline is where it should be: in a consumer group session, or
// deliberately stopped for the idle penalty.
func (p *Pipeline) Ready() bool {
	return p.sessions.Load() > 0 || p.idle.Load()
}

// HTTPHandler serves /metrics (Prometheus, the pipeline's own registry), /healthz and /readyz.
func (p *Pipeline) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.metrics.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !p.Ready() {
			http.Error(w, "not in a consumer group session", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// Run consumes and processes until ctx ends, then shuts down gracefully: it stops fetching,
// finishes the messages in flight within the shutdown timeout, waits for the producer's
// acks, commits, and leaves the group. It returns nil after a shutdown; Kafka being
// unreachable is retried, not returned.
func (p *Pipeline) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("pipeline is already running")
	}
	defer p.running.Store(false)
	p.log.Info("pipeline starting", "topics", p.set.topics, "group", p.set.group,
		"workers", p.set.poolSize, "buffer", p.set.buffer, "ordering", p.set.ordering,
		"memoryBudget", p.set.memory.total, "memoryBudgetFrom", p.set.memory.source, "memoryLimit", p.set.memory.limit)
	failures := 0
	for ctx.Err() == nil {
		idle, err := p.runPhase(ctx)
		switch {
		case err != nil:
			failures++
			wait := jitteredBackoff(failures, time.Second, 30*time.Second)
			p.log.Error("cannot reach Kafka; retrying", "err", err, "in", wait.String())
			sleepCtx(ctx, wait)
		case idle:
			failures = 0
			p.penalty(ctx)
		}
	}
	p.log.Info("pipeline stopped")
	return nil
}

// penalty keeps the consumer stopped for idle.penalty.
func (p *Pipeline) penalty(ctx context.Context) {
	d := p.set.idlePenalty
	p.log.Info("idle: consumer stopped for the penalty", "window", p.set.idleWindow.String(), "penalty", d.String())
	p.idle.Store(true)
	p.metrics.idle.Set(1)
	p.metrics.idlePeriods.Inc()
	sleepCtx(ctx, d)
	p.idle.Store(false)
	p.metrics.idle.Set(0)
	if ctx.Err() == nil {
		p.log.Info("idle penalty over: consumer starting again")
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
