package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/kpipe-io/kpipe/test/harness"
)

// scenario drives the traffic and watches the pipeline once a second.
type scenario struct {
	h *harness.Harness
	o options
	p *producer

	phase    atomic.Value // string
	produced atomic.Int64

	mu           sync.Mutex
	start        time.Time
	phases       []phaseMark
	burstDrained time.Duration // from the start of the burst until the group committed all of it
	peakDesired  int32
	peakReady    int32
	committed    int64
	replicas     int32
	lag          int64
}

type summary struct {
	peakDesired, peakReady int32
	burstDrained           time.Duration
	in, out, unique, lost  int
	elapsed                time.Duration
	start                  time.Time
	phases                 []phaseMark
	changes                []scaleChange
}

func newScenario(h *harness.Harness, o options) (*scenario, error) {
	p, err := newProducer(h.Kafka.Addrs)
	if err != nil {
		return nil, err
	}
	s := &scenario{h: h, o: o, p: p}
	s.phase.Store("start")
	return s, nil
}

func (s *scenario) close() { s.p.cl.Close() }

// mark starts a phase of the scenario.
func (s *scenario) mark(name string) {
	s.phase.Store(name)
	s.mu.Lock()
	s.phases = append(s.phases, phaseMark{at: time.Now(), name: name})
	s.mu.Unlock()
}

func (s *scenario) run(ctx context.Context) (*summary, error) {
	s.start = time.Now()
	viewCtx, stopView := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.view(viewCtx) })
	defer func() { stopView(); wg.Wait() }()

	if err := s.burst(ctx); err != nil {
		return nil, err
	}
	if err := s.steady(ctx); err != nil {
		return nil, err
	}
	if err := s.silence(ctx); err != nil {
		return nil, err
	}
	stopView()
	wg.Wait()
	return s.summarise(ctx)
}

// burst produces o.burst messages at once, in chunks so the view shows the rate.
func (s *scenario) burst(ctx context.Context) error {
	s.mark("burst")
	fmt.Printf("%5.0fs  burst: %d messages at once\n", time.Since(s.start).Seconds(), s.o.burst)
	for left := s.o.burst; left > 0; {
		n := min(left, 10_000)
		if err := s.p.produce(ctx, n); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		s.produced.Add(int64(n))
		left -= n
	}
	return nil
}

// steady produces o.rate messages a second for o.steady.
func (s *scenario) steady(ctx context.Context) error {
	s.mark("steady")
	fmt.Printf("%5.0fs  steady: %d messages/s for %s\n", time.Since(s.start).Seconds(), s.o.rate, s.o.steady)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	end := time.Now().Add(s.o.steady)
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		n := s.o.rate / 10
		if err := s.p.produce(ctx, n); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		s.produced.Add(int64(n))
	}
	return nil
}

// silence waits, producing nothing, until everything is committed and the pipeline is at
// zero replicas again.
func (s *scenario) silence(ctx context.Context) error {
	s.mark("silence")
	fmt.Printf("%5.0fs  silence: nothing produced until the pipeline drains and idles to zero\n", time.Since(s.start).Seconds())
	deadline := time.After(s.o.quietMax)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return errNotDrained
		case <-t.C:
		}
		s.mu.Lock()
		done := s.committed >= s.produced.Load() && s.replicas == 0 && s.lag == 0
		s.mu.Unlock()
		if done {
			return nil
		}
	}
}

// view prints one line a second: produced/s, consumed/s, lag, replicas and conditions.
func (s *scenario) view(ctx context.Context) {
	fmt.Printf("\n%6s  %-8s %11s %11s %8s %7s %5s  %s\n", "t", "phase", "produced/s", "consumed/s", "lag", "desired", "ready", "conditions")
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastProduced, lastCommitted int64
	for {
		select {
		case <-ctx.Done():
			fmt.Println()
			return
		case <-t.C:
		}
		produced := s.produced.Load()
		committed := s.committedTotal(ctx)
		kp, err := pipelineStatus(ctx, s.h.Client)
		if err != nil {
			continue
		}
		var d appsv1.Deployment
		replicas, ready := int32(0), int32(0)
		if s.h.Client.Get(ctx, pipelineKey, &d) == nil && d.Spec.Replicas != nil {
			replicas, ready = *d.Spec.Replicas, d.Status.ReadyReplicas
		}
		s.mu.Lock()
		s.committed, s.replicas, s.lag = committed, replicas, kp.Status.Lag
		s.peakDesired = max(s.peakDesired, kp.Status.DesiredReplicas, replicas)
		s.peakReady = max(s.peakReady, ready)
		if s.burstDrained == 0 && committed >= int64(s.o.burst) {
			s.burstDrained = time.Since(s.start)
		}
		s.mu.Unlock()
		fmt.Printf("%5.0fs  %-8s %11d %11d %8d %7d %5d  %s\n", time.Since(s.start).Seconds(), s.phase.Load(),
			produced-lastProduced, max(committed-lastCommitted, 0), kp.Status.Lag, kp.Status.DesiredReplicas, ready, conditions(kp))
		lastProduced, lastCommitted = produced, committed
	}
}

// committedTotal is the sum of the group's committed offsets on the input topic.
func (s *scenario) committedTotal(ctx context.Context) int64 {
	offsets, err := s.h.Kafka.Committed(ctx, group)
	if err != nil {
		return 0
	}
	var total int64
	for _, o := range offsets[input] {
		total += o
	}
	return total
}

// summarise reads the whole output topic and matches it against what was produced.
func (s *scenario) summarise(ctx context.Context) (*summary, error) {
	recs, err := s.h.Kafka.Records(ctx, output)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", output, err)
	}
	seen := make(map[string]bool, len(recs))
	for _, r := range recs {
		seen[string(r.Value)] = true
	}
	changes, err := scaleChanges(ctx, s.h.Client)
	if err != nil {
		return nil, fmt.Errorf("list the operator's events: %w", err)
	}
	in := int(s.produced.Load())
	lost := 0
	for i := range in {
		if !seen[fmt.Sprintf("order-%09d", i)] {
			lost++
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &summary{
		peakDesired: s.peakDesired, peakReady: s.peakReady, burstDrained: s.burstDrained,
		in: in, out: len(recs), unique: len(seen), lost: lost, elapsed: time.Since(s.start),
		start: s.start, phases: s.phases, changes: changes,
	}, nil
}

func (m *summary) print() {
	fmt.Printf(`== summary
  peak replicas         %d desired, %d ready (%d partitions)
  burst drained in      %s (from the start of the burst until the group committed all of it)
  messages in           %d
  messages out          %d (%d distinct, %d duplicates)
  lost                  %d (checked by reading %s)
  scenario took         %s, ending at zero replicas
`, m.peakDesired, m.peakReady, partitions, m.burstDrained.Round(100*time.Millisecond), m.in, m.out, m.unique,
		m.out-m.unique, m.lost, output, m.elapsed.Round(time.Second))
	printChanges(m.changes, m.start, m.phases)
}
