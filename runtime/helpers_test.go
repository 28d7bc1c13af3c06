package runtime

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	. "github.com/onsi/gomega"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// testCluster is an in-process Kafka cluster (kfake) with franz-go clients for the test's
// own reads and writes, independent of the sarama code under test.
type testCluster struct {
	t     testing.TB
	c     *kfake.Cluster
	addrs []string
	cl    *kgo.Client
	adm   *kadm.Client
}

// newTestCluster starts a cluster with the given topics and partition counts.
func newTestCluster(t testing.TB, topics map[string]int32, opts ...kfake.Opt) *testCluster {
	t.Helper()
	for name, n := range topics {
		opts = append(opts, kfake.SeedTopics(n, name))
	}
	opts = append(opts, kfake.NumBrokers(1))
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(4<<20),
		kgo.MaxBufferedRecords(200_000),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &testCluster{t: t, c: c, addrs: c.ListenAddrs(), cl: cl, adm: kadm.NewClient(cl)}
}

// input describes the test input: record i has key "k<i%keys>", value "<i>", a header
// "seq: <i>", and goes to partition (i%keys)%partitions, so each key lives in one partition
// and both keys and partitions see increasing values.
type input struct {
	topic      string
	n          int
	keys       int
	partitions int32
}

func (in input) key(i int) string { return "k" + strconv.Itoa(i%in.keys) }
func (in input) partition(i int) int32 {
	return int32(i%in.keys) % in.partitions
}

// produce writes records [from, to) of the input.
func (tc *testCluster) produce(in input, from, to int) {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var failed atomic.Value
	var wg sync.WaitGroup
	for i := from; i < to; i++ {
		v := strconv.Itoa(i)
		r := &kgo.Record{
			Topic: in.topic, Partition: in.partition(i), Key: []byte(in.key(i)), Value: []byte(v),
			Headers: []kgo.RecordHeader{{Key: "seq", Value: []byte(v)}},
		}
		wg.Add(1)
		tc.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				failed.Store(err)
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		tc.t.Fatalf("produce input: %v", err)
	}
}

// outRecord is a record read back from an output topic.
type outRecord struct {
	partition int32
	offset    int64
	key       string
	value     int
	headers   map[string]string
}

// readAll reads every record of topic from the start until want distinct values were seen
// (or the timeout passes) and returns them in log order per partition.
func (tc *testCluster) readAll(topic string, want int, timeout time.Duration) []outRecord {
	tc.t.Helper()
	cl := tc.reader(topic)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []outRecord
	seen := map[int]bool{}
	for len(seen) < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			rec := tc.outRecordOf(r)
			out = append(out, rec)
			seen[rec.value] = true
		})
	}
	return out
}

// reader is a client that reads topic from the start.
func (tc *testCluster) reader(topic string, opts ...kgo.Opt) *kgo.Client {
	tc.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(tc.addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		tc.t.Fatal(err)
	}
	return cl
}

// outRecordOf is an output record; its value must be the number of the input it came from.
func (tc *testCluster) outRecordOf(r *kgo.Record) outRecord {
	v, err := strconv.Atoi(string(r.Value))
	if err != nil {
		tc.t.Errorf("output value %q is not a number", r.Value)
	}
	hs := map[string]string{}
	for _, h := range r.Headers {
		hs[h.Key] = string(h.Value)
	}
	return outRecord{partition: r.Partition, offset: r.Offset, key: string(r.Key), value: v, headers: hs}
}

// endOffsets returns the log-end offset of every partition of topic.
func (tc *testCluster) endOffsets(topic string) map[int32]int64 {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lo, err := tc.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		tc.t.Fatal(err)
	}
	out := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// expectCommittedAtEnd waits until the group's committed offsets, read with kadm, equal
// the log-end offsets of topic.
func (tc *testCluster) expectCommittedAtEnd(g Gomega, group, topic string) {
	end := tc.endOffsets(topic)
	g.Eventually(func(g Gomega) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		offs, err := tc.adm.FetchOffsets(ctx, group)
		g.Expect(err).NotTo(HaveOccurred())
		for p, e := range end {
			o, ok := offs.Lookup(topic, p)
			g.Expect(ok).To(BeTrue(), "no commit for %s/%d", topic, p)
			g.Expect(o.At).To(Equal(e), "commit of %s/%d", topic, p)
		}
	}).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

// committed returns the group's committed offsets of topic (-1 where none).
func (tc *testCluster) committed(group, topic string, partitions int32) map[int32]int64 {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offs, err := tc.adm.FetchOffsets(ctx, group)
	if err != nil {
		tc.t.Fatal(err)
	}
	out := map[int32]int64{}
	for p := range partitions {
		out[p] = -1
		if o, ok := offs.Lookup(topic, p); ok {
			out[p] = o.At
		}
	}
	return out
}

// specJSON renders a spec as the controller would: JSON of the KafkaPipelineSpec.
func specJSON(t testing.TB, spec map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// baseSpec is a forward pipeline from topic "in" to "out" reading from the earliest offset,
// with short retries.
func (tc *testCluster) baseSpec(group string) map[string]any {
	return map[string]any{
		"kafka":         map[string]any{"bootstrapServers": tc.addrs},
		"topics":        []string{"in"},
		"group":         group,
		"initialOffset": "Earliest",
		"pool":          map[string]any{"size": 8, "buffer": 16, "ordering": "Key"},
		"idle":          map[string]any{"window": "10m", "penalty": "10m"},
		"processor":     map[string]any{"forward": map[string]any{"topic": "out"}},
		"retry":         map[string]any{"maxAttempts": 3, "initialBackoff": "10ms", "maxBackoff": "100ms"},
	}
}

// testLogger logs warnings and errors through t.Log until the test ends.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	if !w.done.Load() {
		w.t.Logf("%s", b)
	}
	return len(b), nil
}

// running is a Pipeline running in the background.
type running struct {
	p      *Pipeline
	cancel context.CancelFunc
	done   chan error
}

// start runs a pipeline for spec until stop is called or the test ends.
func start(t testing.TB, spec []byte, opts ...Option) *running {
	t.Helper()
	cfg, err := LoadConfig(spec, SecretDirs{})
	if err != nil {
		t.Fatal(err)
	}
	return startConfig(t, cfg, opts...)
}

// startConfig runs a pipeline for cfg until stop is called or the test ends.
func startConfig(t testing.TB, cfg *Config, opts ...Option) *running {
	t.Helper()
	opts = append([]Option{WithLogger(testLogger(t)), WithCommitInterval(200 * time.Millisecond),
		WithSaramaConfig(fastGroup)}, opts...)
	p, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the pipeline's context and waits for Run to return.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		r.done <- nil // later calls return at once
	case <-time.After(90 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// fastGroup shortens the consumer group timers, for tests.
func fastGroup(sc *sarama.Config) {
	sc.Consumer.Group.Session.Timeout = 6 * time.Second
	sc.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	sc.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	sc.Consumer.MaxWaitTime = 100 * time.Millisecond
	sc.Metadata.Retry.Backoff = 50 * time.Millisecond
	sc.Producer.Retry.Backoff = 20 * time.Millisecond
	sc.Consumer.Retry.Backoff = 100 * time.Millisecond
}

// checkAllPresent fails unless every value in [0, n) is in out, and returns how many
// records were duplicates.
func checkAllPresent(t testing.TB, out []outRecord, n int) (duplicates int) {
	t.Helper()
	seen := make([]int, n)
	for _, r := range out {
		if r.value < 0 || r.value >= n {
			t.Fatalf("unexpected value %d", r.value)
		}
		seen[r.value]++
	}
	missing := 0
	for v, c := range seen {
		if c == 0 {
			if missing < 10 {
				t.Errorf("value %d never reached the output", v)
			}
			missing++
		}
		if c > 1 {
			duplicates += c - 1
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d values lost", missing, n)
	}
	return duplicates
}

// checkOrder fails unless, within each group given by groupOf, the first appearances of
// values (in the order of out) increase.
func checkOrder(t testing.TB, out []outRecord, what string, groupOf func(outRecord) string) {
	t.Helper()
	last := map[string]int{}
	seen := map[int]bool{}
	bad := 0
	for _, r := range out {
		if seen[r.value] {
			continue
		}
		seen[r.value] = true
		g := groupOf(r)
		if prev, ok := last[g]; ok && r.value < prev {
			if bad < 5 {
				t.Errorf("%s %s: %d after %d", what, g, r.value, prev)
			}
			bad++
		}
		last[g] = r.value
	}
	if bad > 0 {
		t.Fatalf("%d values out of %s order", bad, what)
	}
}
