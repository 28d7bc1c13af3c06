package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The benchmarks in this file compare the runtime with its peers on one kfake cluster in one
// run and log their results as "BENCH|section|row|kpipe|peer|ratio|note" lines, which
// hack/bench.sh (`make bench`) collects into one table. They assert nothing about time.

// benchRow logs one row of the benchmark table.
func benchRow(b *testing.B, section, row, kpipe, peer, ratio, note string) {
	b.Helper()
	b.Logf("BENCH|%s|%s|%s|%s|%s|%s", section, row, kpipe, peer, ratio, note)
}

// benchNames returns the names of all that env (a comma-separated list) selects, in env's
// order, or all when env is empty.
func benchNames(env string, all []string) []string {
	v := os.Getenv(env)
	if v == "" {
		return all
	}
	var names []string
	for name := range strings.SplitSeq(v, ",") {
		if slices.Contains(all, name) && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// inTurn returns names for run number run: as they are on even runs, reversed on odd ones,
// so that -benchtime 2x or more alternates which runs first (hack/bench-handoff.sh
// alternates it across processes).
//
// Whichever consumer ran first in a process, right after the input was produced, ran a fifth
// slower than when it ran later (docs/benchmarks.md, "Which ran first"); a collection before
// each run did not change that, a run of another consumer before it removed most of it. So
// the benchmarks start with an unmeasured warm-up run (warmUp), and since some of the effect
// was left in some series, the order alternates besides.
func inTurn(names []string, run int) []string {
	if run%2 == 0 {
		return names
	}
	r := slices.Clone(names)
	slices.Reverse(r)
	return r
}

// warmUp runs run once before anything is measured (see inTurn) and logs how long it took.
func warmUp(b *testing.B, what string, run func()) {
	b.Helper()
	start := time.Now()
	run()
	b.Logf("warm-up, %s: %v", what, time.Since(start).Round(time.Millisecond))
}

func rate(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + " msg/s" }

func ratio(a, b float64) string {
	if b <= 0 {
		return "n/a"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64) + "x"
}

// counter counts handled messages; done closes when want were handled. The clock starts when
// the count first reaches max(warm, 1), so joining the group (and, with a warm-up, the first
// fetches, which batching consumers answer from one buffer) is not what is measured. It also
// reads the process's CPU time where the clock starts and stops (see cpuPerMessage).
type counter struct {
	want, warm        int64
	count             atomic.Int64
	first, last       atomic.Int64 // unix nanoseconds; each stored after the CPU time read with it
	firstCount        atomic.Int64 // the count when the clock started
	cpuFirst, cpuLast atomic.Int64 // the process's CPU time at first and last, in nanoseconds
	done              chan struct{}
	spanCPU           time.Duration // set by rateWithin: CPU time over the span it measured
	spanMessages      int64         // and the messages handled in it
}

func newCounter(want int) *counter { return &counter{want: int64(want), done: make(chan struct{})} }

func (c *counter) add(k int64) {
	v := c.count.Add(k)
	w := max(c.warm, 1)
	if v-k < w && v >= w {
		c.firstCount.Store(v)
		c.cpuFirst.Store(int64(processCPU()))
		c.first.Store(time.Now().UnixNano())
	}
	if v-k < c.want && v >= c.want {
		c.cpuLast.Store(int64(processCPU()))
		c.last.Store(time.Now().UnixNano())
		close(c.done)
	}
}

// processCPU is the CPU time, user and system, the benchmark's process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPerMessage is the process's CPU time per message handled over the span rateWithin
// measured, in microseconds. It counts every goroutine of the process, kfake's answers to the
// fetches included: it compares consumers that run alike in one process, one after the
// other, by the work each does per message.
func (c *counter) cpuPerMessage() float64 {
	if c.spanMessages <= 0 {
		return 0
	}
	return float64(c.spanCPU.Microseconds()) / float64(c.spanMessages)
}

// rateWithin waits until every message was handled or window passed since the clock started,
// and returns messages per second since then.
func (c *counter) rateWithin(b *testing.B, window time.Duration) float64 {
	b.Helper()
	deadline := time.After(2 * time.Minute)
	for c.first.Load() == 0 {
		select {
		case <-deadline:
			b.Fatal("no message was handled within 2 minutes")
		case <-time.After(time.Millisecond):
		}
	}
	first := time.Unix(0, c.first.Load())
	select {
	case <-c.done:
		for c.last.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		c.spanMessages, c.spanCPU = c.want-c.firstCount.Load(), time.Duration(c.cpuLast.Load()-c.cpuFirst.Load())
		return float64(c.spanMessages) / time.Duration(c.last.Load()-c.first.Load()).Seconds()
	case <-time.After(time.Until(first.Add(window))):
		c.spanMessages, c.spanCPU = c.count.Load()-c.firstCount.Load(), processCPU()-time.Duration(c.cpuFirst.Load())
		return float64(c.spanMessages) / time.Since(first).Seconds()
	}
}

// benchCounter is the counter the registered "bench-noop" and "bench-sleep" handlers report to.
var (
	benchCounter  atomic.Pointer[counter]
	benchSleep    atomic.Int64 // nanoseconds the bench-sleep handler sleeps
	benchRegister sync.Once
)

func registerBenchHandlers() {
	benchRegister.Do(func() {
		Register("bench-noop", HandlerFunc(func(context.Context, *Message) error {
			benchCounter.Load().add(1)
			return nil
		}))
		Register("bench-sleep", HandlerFunc(func(context.Context, *Message) error {
			time.Sleep(time.Duration(benchSleep.Load()))
			benchCounter.Load().add(1)
			return nil
		}))
	})
}

// runFor runs f in the background and returns a function that stops it and waits.
func runFor(f func(ctx context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ctx)
	}()
	return func() { cancel(); <-done }
}

// kpipeHandlerRun runs a kpipe pipeline with a registered handler until ctx ends.
func kpipeHandlerRun(b *testing.B, tc *testCluster, topic, group, handler string, pool map[string]any) func(ctx context.Context) {
	spec := tc.baseSpec(group)
	spec["topics"] = []string{topic}
	spec["pool"] = pool
	spec["processor"] = map[string]any{"handler": map[string]any{"name": handler}}
	spec["template"] = map[string]any{"image": "example.com/bench:1"}
	return kpipeRun(b, spec)
}

func kpipeRun(b *testing.B, spec map[string]any, opts ...Option) func(ctx context.Context) {
	cfg, err := LoadConfig(specJSON(b, spec), SecretDirs{})
	if err != nil {
		b.Fatal(err)
	}
	opts = append([]Option{WithLogger(testLogger(b)), WithSaramaConfig(fastGroup)}, opts...)
	p, err := New(cfg, opts...)
	if err != nil {
		b.Fatal(err)
	}
	return func(ctx context.Context) {
		if err := p.Run(ctx); err != nil {
			b.Error(err)
		}
	}
}

// saramaGroupConfig is the configuration of the plain sarama peers: sarama's defaults
// (auto-commit every second), the earliest offset, and the test's short group timers.
func saramaGroupConfig() *sarama.Config {
	sc := sarama.NewConfig()
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Return.Successes = true
	sc.Producer.Partitioner = sarama.NewHashPartitioner
	fastGroup(sc)
	return sc
}

// saramaGroupRun consumes topic with a plain sarama consumer group until ctx ends, then
// closes the group (which commits what was marked).
func saramaGroupRun(b *testing.B, addrs []string, topic, group string, sc *sarama.Config, h sarama.ConsumerGroupHandler) func(ctx context.Context) {
	return func(ctx context.Context) {
		cg, err := sarama.NewConsumerGroup(addrs, group, sc)
		if err != nil {
			b.Error(err)
			return
		}
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) && ctx.Err() == nil {
				b.Logf("sarama consume: %v", err)
				time.Sleep(50 * time.Millisecond)
			}
		}
		_ = cg.Close()
	}
}

// markHandler is the seeds' baseline: handle each message in turn, then MarkMessage; sarama
// auto-commits the marks every second.
type markHandler struct {
	c     *counter
	sleep time.Duration
}

func (markHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (markHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h markHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			if h.sleep > 0 {
				time.Sleep(h.sleep)
			}
			sess.MarkMessage(m, "")
			h.c.add(1)
		case <-sess.Context().Done():
			return nil
		}
	}
}

// kgoGroupRun consumes topic with franz-go's group consumer (autocommit) until ctx ends.
func kgoGroupRun(b *testing.B, addrs []string, topic, group string, c *counter) func(ctx context.Context) {
	return func(ctx context.Context) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
		if err != nil {
			b.Error(err)
			return
		}
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			if n := fs.NumRecords(); n > 0 {
				c.add(int64(n))
			}
		}
	}
}

// BenchmarkConsume measures consume-only throughput: 3M messages on 6 partitions, read by
// kpipe with a registered no-op Go handler (pool 8, Key ordering), by a plain sarama
// consumer-group handler (MarkMessage per message, auto-commit), by franz-go's kgo consumer,
// and by the two floor peers of floor_peers_bench_test.go: plain sarama handing every batch
// to a goroutine of its claim (sarama-batches), or every message to one of 8 shared
// goroutines (sarama-each), and nothing more. The clock starts after the first 300k messages
// of each and stops at the last.
// Plain sarama reads 3M in one to two seconds: with 500k, as this benchmark had, the clock
// ran 0.2-0.4 s and mostly measured how the first fetches happened to be answered: kpipe
// read 1.2M-2.0M msg/s there and 0.65M-0.92M msg/s over 3M (docs/benchmarks.md).
// KPIPE_BENCH_ONLY=kpipe (or any of consumeContenders, or a comma-separated list of them)
// runs only those, in that order, e.g. for a CPU profile; hack/bench-handoff.sh alternates the
// order of kpipe and its peers from pair to pair.
//
//	go test ./runtime -run '^$' -bench '^BenchmarkConsume$' -benchtime 1x -v
func BenchmarkConsume(b *testing.B) {
	const n = 3_000_000
	registerBenchHandlers()
	tc := newTestCluster(b, map[string]int32{"consume": 6})
	tc.produce(input{topic: "consume", n: n, keys: 600, partitions: 6}, 0, n)
	warmUp(b, "kgo reads the topic", func() {
		c := newCounter(n)
		stop := runFor(kgoGroupRun(b, tc.addrs, "consume", "consume-warm-up", c))
		c.rateWithin(b, time.Minute)
		stop()
	})
	names := benchNames("KPIPE_BENCH_ONLY", consumeContenders)
	best, cpu := map[string]float64{}, map[string]float64{}
	runs := 0
	for b.Loop() {
		for _, name := range inTurn(names, runs) {
			c := newCounter(n)
			c.warm = n / 10
			group := fmt.Sprintf("consume-%s-%d", name, runs)
			var f func(ctx context.Context)
			switch name {
			case "sarama":
				f = saramaGroupRun(b, tc.addrs, "consume", group, saramaGroupConfig(), markHandler{c: c})
			case "kpipe":
				benchCounter.Store(c)
				f = kpipeHandlerRun(b, tc, "consume", group, "bench-noop", map[string]any{"size": 8, "ordering": "Key"})
			case "kgo":
				f = kgoGroupRun(b, tc.addrs, "consume", group, c)
			case "sarama-batches":
				f = saramaGroupRun(b, tc.addrs, "consume", group, saramaGroupConfig(), batchHandoffHandler{c: c})
			case "sarama-each":
				f = eachHandoffRun(b, tc.addrs, "consume", group, c, 8)
			}
			stop := runFor(f)
			r := c.rateWithin(b, time.Minute)
			stop()
			b.Logf("%s: %.0f msg/s", name, r)
			best[name] = max(best[name], r)
			if u := c.cpuPerMessage(); u > 0 && (cpu[name] == 0 || u < cpu[name]) {
				cpu[name] = u
			}
		}
		runs++
	}
	if runs < 2 {
		// With the default -benchtime b.Loop already ran the comparison more than once.
		b.Logf("runs: %d", runs)
	}
	reportConsume(b, best, cpu)
}

// consumeContenders are BenchmarkConsume's consumers, in the order they run by default.
var consumeContenders = []string{"sarama", "kpipe", "kgo", "sarama-batches", "sarama-each"}

// reportConsume reports BenchmarkConsume's best rates and lowest CPU times per message.
func reportConsume(b *testing.B, best, cpu map[string]float64) {
	for _, name := range consumeContenders {
		b.ReportMetric(best[name], name+"-msgs/s")
		b.ReportMetric(cpu[name], name+"-cpu-us/msg")
	}
	met := "target >= 0.90x: MISSED"
	switch {
	case best["kpipe"] == 0 || best["sarama"] == 0:
		met = "target >= 0.90x: not judged (kpipe and plain sarama did not both run)"
	case best["kpipe"] >= 0.9*best["sarama"]:
		met = "target >= 0.90x: met"
	}
	us := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + " µs" }
	benchRow(b, "1 consume-only", "kpipe no-op handler vs plain sarama", rate(best["kpipe"]), rate(best["sarama"]), ratio(best["kpipe"], best["sarama"]), met)
	benchRow(b, "1 consume-only", "CPU per message (the process's, kfake's answers included; lower is better)", us(cpu["kpipe"]), us(cpu["sarama"]), ratio(cpu["kpipe"], cpu["sarama"]), "")
	benchRow(b, "1 consume-only", "kpipe no-op handler vs franz-go kgo (ceiling)", rate(best["kpipe"]), rate(best["kgo"]), ratio(best["kpipe"], best["kgo"]), "")
	for _, floor := range []string{"sarama-batches", "sarama-each"} {
		benchRow(b, "1 consume-only", "floor: plain sarama with only the hand-off ("+floor+") vs plain sarama", rate(best[floor]), rate(best["sarama"]), ratio(best[floor], best["sarama"]), "")
	}
}

// BenchmarkParallelism runs a 2 ms sleeping handler over topics of 1 and 4 partitions (10k
// messages, 10k keys) with kpipe in Key and Partition ordering at pool sizes 1, 4, 16 and 64,
// and with the plain sarama handler (one message at a time per partition). Each run counts
// the messages handled within 3 s of the first (or until all are).
//
//	go test ./runtime -run '^$' -bench '^BenchmarkParallelism$' -benchtime 1x -v
func BenchmarkParallelism(b *testing.B) {
	const (
		n      = 10_000
		window = 3 * time.Second
		sleep  = 2 * time.Millisecond
	)
	registerBenchHandlers()
	benchSleep.Store(int64(sleep))
	tc := newTestCluster(b, map[string]int32{"par1": 1, "par4": 4})
	tc.produce(input{topic: "par1", n: n, keys: n, partitions: 1}, 0, n)
	tc.produce(input{topic: "par4", n: n, keys: n, partitions: 4}, 0, n)
	runs := 0
	for b.Loop() {
		for _, parts := range []int{1, 4} {
			topic := "par" + strconv.Itoa(parts)
			c := newCounter(n)
			stop := runFor(saramaGroupRun(b, tc.addrs, topic, fmt.Sprintf("par-sarama-%d-%d", parts, runs), saramaGroupConfig(), markHandler{c: c, sleep: sleep}))
			plain := c.rateWithin(b, window)
			stop()
			section := fmt.Sprintf("2 parallelism, %d partition(s), 2 ms handler", parts)
			for _, ordering := range []string{"Key", "Partition"} {
				for _, pool := range []int{1, 4, 16, 64} {
					c := newCounter(n)
					benchCounter.Store(c)
					group := fmt.Sprintf("par-%s-%d-%d-%d", ordering, pool, parts, runs)
					stop := runFor(kpipeHandlerRun(b, tc, topic, group, "bench-sleep", map[string]any{"size": pool, "ordering": ordering}))
					r := c.rateWithin(b, window)
					stop()
					note := ""
					if parts == 1 && ordering == "Key" && pool == 64 {
						note = "target >= 40x: MISSED"
						if r >= 40*plain {
							note = "target >= 40x: met"
						}
					}
					benchRow(b, section, fmt.Sprintf("kpipe %s ordering, pool %d vs plain sarama", ordering, pool), rate(r), rate(plain), ratio(r, plain), note)
				}
			}
		}
		runs++
	}
}

// syncForwardHandler is the naive forwarder: one SyncProducer.SendMessage per message, then
// MarkMessage. A failed send ends the session without marking, so the message is read again.
type syncForwardHandler struct {
	producer sarama.SyncProducer
	out      string
}

func (syncForwardHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (syncForwardHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h syncForwardHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			if _, _, err := h.producer.SendMessage(outMessage(h.out, m)); err != nil {
				return fmt.Errorf("forward: %w", err)
			}
			sess.MarkMessage(m, "")
		case <-sess.Context().Done():
			return nil
		}
	}
}

// asyncForwardHandler is the fast, unsafe forwarder: every message goes to an AsyncProducer
// and is marked at once, before the broker acknowledged it; failed sends are only counted.
type asyncForwardHandler struct {
	producer sarama.AsyncProducer
	out      string
}

func (asyncForwardHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (asyncForwardHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h asyncForwardHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			select {
			case h.producer.Input() <- outMessage(h.out, m):
			case <-sess.Context().Done():
				return nil
			}
			sess.MarkMessage(m, "")
		case <-sess.Context().Done():
			return nil
		}
	}
}

func outMessage(topic string, m *sarama.ConsumerMessage) *sarama.ProducerMessage {
	pm := &sarama.ProducerMessage{Topic: topic, Key: sarama.ByteEncoder(m.Key), Value: sarama.ByteEncoder(m.Value)}
	for _, hd := range m.Headers {
		pm.Headers = append(pm.Headers, *hd)
	}
	return pm
}

// forwarder runs one forward implementation from topic in to topic out until ctx ends. Stopping
// it is abrupt: nothing is drained (kpipe runs with a zero shutdown timeout).
func forwarder(b *testing.B, tc *testCluster, name, in, out, group string) func(ctx context.Context) {
	switch name {
	case "kpipe":
		spec := tc.baseSpec(group)
		spec["topics"] = []string{in}
		spec["pool"] = map[string]any{"size": 8, "ordering": "Key"} // the default buffer, as in BenchmarkConsume
		spec["processor"] = map[string]any{"forward": map[string]any{"topic": out}}
		return kpipeRun(b, spec, WithShutdownTimeout(0))
	case "sarama-sync":
		return func(ctx context.Context) {
			sc := saramaGroupConfig()
			p, err := sarama.NewSyncProducer(tc.addrs, sc)
			if err != nil {
				b.Error(err)
				return
			}
			defer func() { _ = p.Close() }()
			saramaGroupRun(b, tc.addrs, in, group, sc, syncForwardHandler{producer: p, out: out})(ctx)
		}
	case "sarama-async":
		return func(ctx context.Context) {
			sc := saramaGroupConfig()
			p, err := sarama.NewAsyncProducer(tc.addrs, sc)
			if err != nil {
				b.Error(err)
				return
			}
			var wg sync.WaitGroup
			wg.Go(func() {
				for range p.Successes() {
				}
			})
			wg.Go(func() {
				for range p.Errors() {
				}
			})
			saramaGroupRun(b, tc.addrs, in, group, sc, asyncForwardHandler{producer: p, out: out})(ctx)
			p.AsyncClose() // no waiting for what is in flight
			wg.Wait()
		}
	}
	b.Fatalf("unknown forwarder %s", name)
	return nil
}

// outputRate polls the output topic's size and returns records per second from the first
// record on it until it holds want records or window passed.
func (tc *testCluster) outputRate(b *testing.B, topic string, want int64, window time.Duration) float64 {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var first time.Time
	var base int64
	for {
		n := tc.countOutput(topic)
		now := time.Now()
		switch {
		case first.IsZero() && n > 0:
			first, base = now, n
		case !first.IsZero() && (n >= want || now.Sub(first) >= window):
			return float64(n-base) / now.Sub(first).Seconds()
		case first.IsZero() && now.After(deadline):
			b.Fatalf("nothing reached %s within 2 minutes", topic)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// distinctValues reads topic from the start to its current end and returns how many distinct
// values of [0, n) it holds and how many records it holds in all.
func (tc *testCluster) distinctValues(b *testing.B, topic string, n int) (distinct, records int) {
	b.Helper()
	total := tc.countOutput(topic)
	cl, err := kgo.NewClient(kgo.SeedBrokers(tc.addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seen := make([]bool, n)
	for int64(records) < total && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			records++
			if v, err := strconv.Atoi(string(r.Value)); err == nil && v >= 0 && v < n && !seen[v] {
				seen[v] = true
				distinct++
			}
		})
	}
	return distinct, records
}

// committedAtEnd waits until group has committed the end offset of every partition of topic.
func (tc *testCluster) committedAtEnd(b *testing.B, group, topic string, partitions int32, timeout time.Duration) bool {
	b.Helper()
	end := tc.endOffsets(topic)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		got := tc.committed(group, topic, partitions)
		all := true
		for p, e := range end {
			if got[p] != e {
				all = false
			}
		}
		if all {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// BenchmarkForwardPipeline compares forward pipelines (consume, produce, commit): kpipe
// (pool 8, Key ordering), a plain sarama handler with a SyncProducer per message (naive, safe)
// and one with an AsyncProducer that marks before the ack (fast, unsafe).
//
// Throughput: 300k messages on 6 partitions, output records per second from the first output
// record until all arrived or 10 s passed. (100k made about 0.4 s of output, where the first
// fetches and the producer's first batches weighed as much as the steady state.)
//
// Kill: 20k messages on 6 partitions, arriving over about 4 s. While the first instance runs,
// the output topic refuses 10 produce requests (TOPIC_AUTHORIZATION_FAILED, which sarama does
// not retry); a second later the instance is killed mid-stream: the broker refuses its
// commits from then on (GROUP_AUTHORIZATION_FAILED; kfake still applies a commit it answers
// with REQUEST_TIMED_OUT) and it is stopped without draining. A fresh instance of the same group then runs until the group committed the end
// of the input, and the output is checked for every input value.
//
// KPIPE_BENCH_FORWARDERS=kpipe,sarama-async runs only those, in that order (rows of the
// others are empty); hack/bench-handoff.sh alternates the order from pair to pair.
//
//	go test ./runtime -run '^$' -bench '^BenchmarkForwardPipeline$' -benchtime 1x -v
func BenchmarkForwardPipeline(b *testing.B) {
	const (
		n     = 300_000
		nKill = 20_000
	)
	names := benchNames("KPIPE_BENCH_FORWARDERS", []string{"kpipe", "sarama-sync", "sarama-async"})
	topics := map[string]int32{"fwin": 6, "fwout-warm-up": 6}
	for _, name := range names {
		topics["fwout-"+name] = 6
		topics["kin-"+name] = 6
		topics["kout-"+name] = 6
	}
	tc := newTestCluster(b, topics)
	tc.produce(input{topic: "fwin", n: n, keys: 600, partitions: 6}, 0, n)
	warmUp(b, "the AsyncProducer handler forwards the input", func() {
		stop := runFor(forwarder(b, tc, "sarama-async", "fwin", "fwout-warm-up", "fw-warm-up"))
		tc.outputRate(b, "fwout-warm-up", n, 10*time.Second)
		stop()
	})
	rates := map[string]float64{}
	lost := map[string]string{}
	runs := 0
	for b.Loop() {
		for _, name := range inTurn(names, runs) {
			out := "fwout-" + name
			before := tc.countOutput(out)
			stop := runFor(forwarder(b, tc, name, "fwin", out, fmt.Sprintf("fw-%s-%d", name, runs)))
			rates[name] = tc.outputRate(b, out, before+n, 10*time.Second)
			stop()
			b.Logf("%s: %.0f msg/s", name, rates[name])
		}
		if runs == 0 {
			for _, name := range names {
				lost[name] = forwardKill(b, tc, name, nKill)
			}
		}
		runs++
	}
	b.ReportMetric(rates["kpipe"], "kpipe-msgs/s")
	b.ReportMetric(rates["sarama-async"], "async-msgs/s")
	section := "3 forward (consume, produce, commit)"
	benchRow(b, section, "kpipe vs sarama SyncProducer per message", rate(rates["kpipe"]), rate(rates["sarama-sync"]), ratio(rates["kpipe"], rates["sarama-sync"]), "")
	benchRow(b, section, "kpipe vs sarama AsyncProducer, no ack tracking", rate(rates["kpipe"]), rate(rates["sarama-async"]), ratio(rates["kpipe"], rates["sarama-async"]), "")
	for _, name := range names {
		benchRow(b, section, "after kill + produce faults: "+name, lost[name], "", "", "")
	}
}

// forwardKill runs the kill scenario for one forwarder and describes what reached the output.
// The input keeps arriving while the first instance runs, so the faults and the kill land
// mid-stream.
func forwardKill(b *testing.B, tc *testCluster, name string, n int) string {
	in, out, group := "kin-"+name, "kout-"+name, "kill-"+name
	feed := input{topic: in, n: n, keys: 600, partitions: 6}
	tc.produce(feed, 0, n/10)
	var producing sync.WaitGroup
	producing.Go(func() {
		for from := n / 10; from < n; from += 300 {
			tc.produce(feed, from, min(from+300, n))
			time.Sleep(50 * time.Millisecond)
		}
	})
	stop := runFor(forwarder(b, tc, name, in, out, group))
	waitOutput := func(at int64) {
		deadline := time.Now().Add(time.Minute)
		for tc.countOutput(out) < at && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitOutput(int64(n / 20))
	faults := tc.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: out, Err: kerr.TopicAuthorizationFailed, Count: 10})
	waitOutput(int64(n / 5))
	time.Sleep(1200 * time.Millisecond) // an auto-commit interval passes
	faults.Remove()
	refuse := tc.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.GroupAuthorizationFailed, Count: -1})
	killedAt := tc.countOutput(out)
	stop()
	refuse.Remove()
	var committedAtKill int64
	for _, o := range tc.committed(group, in, 6) {
		committedAtKill += max(o, 0)
	}
	producing.Wait()

	stop = runFor(forwarder(b, tc, name, in, out, group))
	ok := tc.committedAtEnd(b, group, in, 6, 2*time.Minute)
	stop()
	distinct, records := tc.distinctValues(b, out, n)
	b.Logf("%s: killed with %d of %d on the output and %d input offsets committed", name, killedAt, n, committedAtKill)
	if !ok {
		return fmt.Sprintf("group never committed the end of the input; %d of %d values on the output", distinct, n)
	}
	if distinct < n {
		return fmt.Sprintf("LOST %d of %d messages (%d duplicates)", n-distinct, n, records-distinct)
	}
	return fmt.Sprintf("lost 0 of %d (%d duplicates)", n, records-distinct)
}
