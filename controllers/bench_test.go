package controllers_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/twmb/franz-go/pkg/kmsg"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers"
	"github.com/kpipe-io/kpipe/controllers/lag"
	"github.com/kpipe-io/kpipe/controllers/manager"
	"github.com/kpipe-io/kpipe/test/envtest"
	"github.com/kpipe-io/kpipe/test/kafkatest"
)

// groupPolls records, from the requests kfake handles, when each consumer group's committed
// offsets were last fetched (one OffsetFetch per pipeline poll) and counts every request.
type groupPolls struct {
	mu      sync.Mutex
	times   map[string][]time.Time
	total   int
	fetches int
}

func (g *groupPolls) record(req kmsg.Request) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total++
	if r, ok := req.(*kmsg.OffsetFetchRequest); ok {
		g.fetches++
		if r.Group != "" {
			g.add(r.Group, now)
		}
		for _, gr := range r.Groups {
			g.add(gr.Group, now)
		}
	}
}

// add records a fetch of the group, keeping the last 32: enough for a measuring window, and
// the benchmark's own memory does not grow with the run.
func (g *groupPolls) add(group string, at time.Time) {
	ts := g.times[group]
	if len(ts) >= 32 {
		ts = append(ts[:0], ts[16:]...)
	}
	g.times[group] = append(ts, at)
}

// polledSince is how many of the groups were polled after t.
func (g *groupPolls) polledSince(groups []string, t time.Time) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, gr := range groups {
		if ts := g.times[gr]; len(ts) > 0 && ts[len(ts)-1].After(t) {
			n++
		}
	}
	return n
}

// worstGap is the longest time any of the groups went unpolled within [from, to]: between
// two polls, or from a window edge to the nearest poll.
func (g *groupPolls) worstGap(groups []string, from, to time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	var worst time.Duration
	for _, gr := range groups {
		prev := from
		for _, t := range g.times[gr] {
			if t.Before(from) || t.After(to) {
				continue
			}
			worst = max(worst, t.Sub(prev))
			prev = t
		}
		worst = max(worst, to.Sub(prev))
	}
	return worst
}

func (g *groupPolls) counts() (total, fetches int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total, g.fetches
}

// memory is the process's resident set (VmRSS) and, after a GC, the Go heap in use.
func memory() (rss, heap uint64) {
	goruntime.GC()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	f, err := os.Open("/proc/self/status")
	if err == nil {
		defer func() { _ = f.Close() }()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				rss = kb << 10
			}
		}
	}
	return rss, ms.HeapInuse
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// apiWrites counts the manager's writes to the API server (every request but GET), and the
// pipelines whose status it patched.
type apiWrites struct {
	mu       sync.Mutex
	total    int
	status   int
	statusOf map[string]bool
}

func (a *apiWrites) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method != http.MethodGet {
			a.mu.Lock()
			a.total++
			if name, ok := strings.CutSuffix(req.URL.Path, "/status"); ok && strings.Contains(name, "/kafkapipelines/") {
				a.status++
				a.statusOf[name[strings.LastIndex(name, "/")+1:]] = true
			}
			a.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

func (a *apiWrites) counts() (total, status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total, a.status
}

// statusWritten is how many of the pipelines have had their status written.
func (a *apiWrites) statusWritten(names []string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, name := range names {
		if a.statusOf[name] {
			n++
		}
	}
	return n
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// benchSizes are the pipeline counts BenchmarkOperatorScale grows through: 10, 100, 1000 and
// 10 000, or those listed in KPIPE_BENCH_SIZES (comma-separated, ascending).
func benchSizes(b *testing.B) []int {
	env := os.Getenv("KPIPE_BENCH_SIZES")
	if env == "" {
		return []int{10, 100, 1000, 10_000}
	}
	var sizes []int
	for f := range strings.SplitSeq(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("KPIPE_BENCH_SIZES: %q is not a pipeline count", f)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// createPipelines creates pipelines from..to-1 with 8 clients at once: the API server's
// answer time, not one client's round trips, bounds the setup of 10 000 pipelines.
func createPipelines(ctx context.Context, b *testing.B, kube client.Client, addrs []string, from, to int, poll time.Duration) []string {
	names := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		names = append(names, fmt.Sprintf("p-%d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < len(names); i += 8 {
				name := names[i]
				kp := &kpipev1.KafkaPipeline{
					ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
					Spec: kpipev1.KafkaPipelineSpec{
						Kafka:     kpipev1.KafkaConnection{BootstrapServers: addrs},
						Topics:    []string{"scale-a", "scale-b"},
						Group:     name + "-group",
						Processor: kpipev1.ProcessorSpec{Forward: &kpipev1.ForwardProcessor{Topic: "scale-out"}},
						Scaling:   kpipev1.ScalingSpec{PollInterval: &metav1.Duration{Duration: poll}},
					},
				}
				if err := kube.Create(ctx, kp); err != nil {
					errs <- fmt.Errorf("create pipeline %s: %w", name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return names
}

// BenchmarkOperatorScale runs a real manager with the KafkaPipelineReconciler against envtest
// and one 3-broker kfake cluster, and grows the number of KafkaPipelines to 10, 100, 1000 and
// 10 000 (each its own group, on the same two 4-partition topics, polled every 5 s; sizes from
// KPIPE_BENCH_SIZES when set). The manager's client has `kpipe manager`'s default QPS and
// burst (--kube-api-qps 50, --kube-api-burst 100). For each size, once every pipeline was
// polled and had its first status written, and one more poll interval, it watches three poll
// intervals and measures the full poll cycle (the mean time for every pipeline to be polled
// once: window x pipelines / polls, polls counted by the reconciler's poll-duration histogram),
// the longest time any group's committed offsets went unread (what a pipeline's decision reads;
// one fetch per pipeline poll before the fetches were batched), the Kafka
// requests per cycle (counted by kfake, normalized to one poll per pipeline), the manager's
// API writes per minute (all, and status patches), and the memory of the test process —
// manager, informer cache, lag reader, and the in-process kfake cluster, whose state does not
// grow with pipelines that commit nothing — as the growth of VmRSS and of the Go heap in use
// after a GC, from before the first pipeline. The kube-apiserver and etcd are separate
// processes and not counted. Pods do not run (envtest has no kubelet), so no group commits
// and no Deployment becomes ready.
//
//	KUBEBUILDER_ASSETS=... go test ./controllers -run '^$' -bench '^BenchmarkOperatorScale$' -benchtime 1x -timeout 60m -v
func BenchmarkOperatorScale(b *testing.B) {
	const poll = 5 * time.Second
	ctrl.SetLogger(logr.Discard())
	for b.Loop() {
		s := startScaleBench(b)
		var names []string
		for _, size := range benchSizes(b) {
			began := time.Now()
			names = append(names, createPipelines(s.ctx, b, s.kube, s.cluster.Addrs, len(names), size, poll)...)
			created := time.Since(began)
			if !s.settle(b, names, began) {
				return
			}
			b.Logf("%d pipelines: created in %s, every one polled and its status written %s after the first create",
				size, created.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
			time.Sleep(poll)
			s.measure(b, size, names, poll)
		}
	}
}

// scaleBench is one BenchmarkOperatorScale run: envtest, kfake, the manager and its counters.
type scaleBench struct {
	ctx         context.Context
	kube        client.Client
	cluster     *kafkatest.Cluster
	polls       *groupPolls
	writes      *apiWrites
	rss0, heap0 uint64
}

func startScaleBench(b *testing.B) *scaleBench {
	te, err := envtest.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = te.Stop() })
	cluster, err := kafkatest.Start(3, 4, "scale-a", "scale-b")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cluster.Close)
	s := &scaleBench{cluster: cluster, polls: &groupPolls{times: map[string][]time.Time{}}, writes: &apiWrites{statusOf: map[string]bool{}}}
	cluster.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		s.polls.record(req)
		return nil, nil, false
	})
	setup := rest.CopyConfig(te.Config) // the setup client only: many pipelines, quickly
	setup.QPS, setup.Burst = 2000, 4000
	if s.kube, err = client.New(setup, client.Options{Scheme: manager.Scheme()}); err != nil {
		b.Fatal(err)
	}
	r := &controllers.KafkaPipelineReconciler{Image: "ghcr.io/kpipe-io/kpipe:bench",
		Lag: lag.NewReader(lag.Options{Timeout: 10 * time.Second})}
	cfg := rest.CopyConfig(te.Config)
	cfg.WrapTransport = s.writes.wrap
	mgr, err := manager.New(cfg, manager.Options{QPS: 50, Burst: 100}, r) // `kpipe manager`'s defaults
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.ctx = ctx
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-mgrDone; err != nil {
			b.Logf("manager: %v", err)
		}
	})
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		b.Fatal("the manager's cache never synced")
	}
	time.Sleep(time.Second)
	s.rss0, s.heap0 = memory()
	return s
}

const scaleSection = "5 operator scale (envtest + kfake, real manager, QPS 50, poll every 5s)"

// settle waits until every pipeline was polled and had its status written, for up to 20
// minutes; it logs a row and returns false when they were not.
func (s *scaleBench) settle(b *testing.B, names []string, began time.Time) bool {
	groups := make([]string, len(names))
	for i, n := range names {
		groups[i] = n + "-group"
	}
	deadline := began.Add(20 * time.Minute)
	for s.polls.polledSince(groups, time.Time{}) < len(groups) || s.writes.statusWritten(names) < len(names) {
		if time.Now().After(deadline) {
			b.Logf("BENCH|%s|%d pipelines|not all polled and written within 20 min of the first create: %d polled, %d written|||stopped here",
				scaleSection, len(names), s.polls.polledSince(groups, time.Time{}), s.writes.statusWritten(names))
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// cpuProfile profiles the process into path until the returned function is called: with
// KPIPE_BENCH_CPUPROFILE_DIR set, each size's steady-state window is profiled on its own.
func cpuProfile(b *testing.B, path string) func() {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// pollsDone is how many lag polls the reconciler made, from its kpipe_lag_poll_duration_seconds
// histogram: one per pipeline poll, whether or not it sent a request to Kafka.
func pollsDone(b *testing.B) uint64 {
	families, err := metrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var n uint64
	for _, f := range families {
		if f.GetName() == "kpipe_lag_poll_duration_seconds" {
			for _, m := range f.Metric {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// measure watches three poll intervals and logs the rows of one size.
func (s *scaleBench) measure(b *testing.B, size int, names []string, poll time.Duration) {
	groups := make([]string, len(names))
	for i, n := range names {
		groups[i] = n + "-group"
	}
	window := 3 * poll
	if dir := os.Getenv("KPIPE_BENCH_CPUPROFILE_DIR"); dir != "" {
		stop := cpuProfile(b, filepath.Join(dir, fmt.Sprintf("operator-%d.prof", size)))
		defer stop()
	}
	t0 := time.Now()
	polls0 := pollsDone(b)
	total0, fetches0 := s.polls.counts()
	writes0, status0 := s.writes.counts()
	time.Sleep(window)
	t1 := time.Now()
	total1, fetches1 := s.polls.counts()
	writes1, status1 := s.writes.counts()
	polled := max(int(pollsDone(b)-polls0), 1)
	cycle := time.Duration(float64(t1.Sub(t0)) * float64(size) / float64(polled))
	worst := s.polls.worstGap(groups, t0, t1)
	perCycle := float64(total1-total0) * float64(size) / float64(polled)
	perMinute := func(n int) float64 { return float64(n) / t1.Sub(t0).Minutes() }
	rss, heap := memory()
	b.Logf("%d pipelines: %d Kafka requests (%d OffsetFetch), %d polls, %d API writes (%d status) in %s",
		size, total1-total0, fetches1-fetches0, polled, writes1-writes0, status1-status0, t1.Sub(t0).Round(time.Millisecond))
	b.Logf("BENCH|%s|%d pipelines: full poll cycle, mean (window x pipelines / polls)|%s|poll interval %s|%.2fx|", scaleSection, size,
		cycle.Round(10*time.Millisecond), poll, cycle.Seconds()/poll.Seconds())
	b.Logf("BENCH|%s|%d pipelines: longest any group's committed offsets went unread|%s|poll interval %s|%.2fx|jitter is up to +10%%", scaleSection, size,
		worst.Round(10*time.Millisecond), poll, worst.Seconds()/poll.Seconds())
	b.Logf("BENCH|%s|%d pipelines: Kafka requests per cycle|%.0f (%.3f per pipeline)|||", scaleSection, size, perCycle, perCycle/float64(size))
	b.Logf("BENCH|%s|%d pipelines: API writes per minute, all / status (per pipeline)|%.0f / %.0f (%.2f / %.2f)|||", scaleSection, size,
		perMinute(writes1-writes0), perMinute(status1-status0), perMinute(writes1-writes0)/float64(size), perMinute(status1-status0)/float64(size))
	b.Logf("BENCH|%s|%d pipelines: memory growth, VmRSS / Go heap in use|%s / %s|||from %s / %s with no pipeline", scaleSection, size,
		mib(rss-min(rss, s.rss0)), mib(heap-min(heap, s.heap0)), mib(s.rss0), mib(s.heap0))
}
