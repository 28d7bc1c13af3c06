package controllers_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	goruntime "runtime"
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
			g.times[r.Group] = append(g.times[r.Group], now)
		}
		for _, gr := range r.Groups {
			g.times[gr.Group] = append(g.times[gr.Group], now)
		}
	}
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

// BenchmarkOperatorScale runs a real manager with the KafkaPipelineReconciler against envtest
// and one 3-broker kfake cluster, and grows the number of KafkaPipelines to 10, 100 and 1000
// (each its own group, on the same two 4-partition topics, polled every 5 s). For each size,
// from two poll intervals after every pipeline was polled at least once, it watches three poll
// intervals and measures the full poll cycle (the mean time for every pipeline to be polled
// once: window x pipelines / polls), the longest time any pipeline went unpolled, the Kafka
// requests per cycle (counted by kfake, normalized to one poll per pipeline), and the memory of the test process — manager, informer cache, lag
// reader, and the in-process kfake cluster, whose state does not grow with pipelines that
// commit nothing — as the growth of VmRSS and of the Go heap in use after a GC, from before the
// first pipeline. The kube-apiserver and etcd are separate processes and not counted. Pods do
// not run (envtest has no kubelet), so no group commits and no Deployment becomes ready.
//
//	KUBEBUILDER_ASSETS=... go test ./controllers -run '^$' -bench '^BenchmarkOperatorScale$' -benchtime 1x -v
func BenchmarkOperatorScale(b *testing.B) {
	const (
		poll    = 5 * time.Second
		window  = 3 * poll
		section = "5 operator scale (envtest + kfake, real manager, poll every 5s)"
	)
	ctrl.SetLogger(logr.Discard())
	for b.Loop() {
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
		polls := &groupPolls{times: map[string][]time.Time{}}
		cluster.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
			cluster.KeepControl()
			polls.record(req)
			return nil, nil, false
		})

		admin := rest.CopyConfig(te.Config)
		admin.QPS, admin.Burst = 500, 1000
		kube, err := client.New(admin, client.Options{Scheme: manager.Scheme()})
		if err != nil {
			b.Fatal(err)
		}
		r := &controllers.KafkaPipelineReconciler{Image: "ghcr.io/kpipe-io/kpipe:bench",
			Lag: lag.NewReader(lag.Options{Timeout: 10 * time.Second})}
		// QPS and burst as `kpipe manager` sets them.
		mgr, err := manager.New(te.Config, manager.Options{QPS: 100, Burst: 200}, r)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
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
		rss0, heap0 := memory()

		var groups []string
		for _, size := range []int{10, 100, 1000} {
			began := time.Now()
			for i := len(groups); i < size; i++ {
				name := fmt.Sprintf("p-%d", i)
				kp := &kpipev1.KafkaPipeline{
					ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
					Spec: kpipev1.KafkaPipelineSpec{
						Kafka:     kpipev1.KafkaConnection{BootstrapServers: cluster.Addrs},
						Topics:    []string{"scale-a", "scale-b"},
						Group:     name + "-group",
						Processor: kpipev1.ProcessorSpec{Forward: &kpipev1.ForwardProcessor{Topic: "scale-out"}},
						Scaling:   kpipev1.ScalingSpec{PollInterval: &metav1.Duration{Duration: poll}},
					},
				}
				if err := kube.Create(ctx, kp); err != nil {
					b.Fatalf("create pipeline %d: %v", i, err)
				}
				groups = append(groups, name+"-group")
			}
			created := time.Since(began)
			// Every pipeline polled at least once.
			deadline := time.Now().Add(5 * time.Minute)
			for polls.polledSince(groups, time.Time{}) < len(groups) {
				if time.Now().After(deadline) {
					b.Logf("BENCH|%s|%d pipelines|not all polled within 5 min of creation: %d of %d|||stopped here", section, size,
						polls.polledSince(groups, time.Time{}), len(groups))
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			firstPoll := time.Since(began)
			time.Sleep(2 * poll) // let the first reconciles (Deployments, status) settle
			// Steady state over three poll intervals.
			t0 := time.Now()
			total0, fetches0 := polls.counts()
			time.Sleep(window)
			t1 := time.Now()
			total1, fetches1 := polls.counts()
			pollsIn := max(fetches1-fetches0, 1)
			cycle := time.Duration(float64(t1.Sub(t0)) * float64(size) / float64(pollsIn))
			worst := polls.worstGap(groups, t0, t1)
			perCycle := float64(total1-total0) * float64(size) / float64(pollsIn)
			rss, heap := memory()
			b.Logf("%d pipelines: created in %s, all polled once %s after the first create; %d requests, %d polls in %s",
				size, created.Round(time.Millisecond), firstPoll.Round(time.Millisecond), total1-total0, pollsIn, t1.Sub(t0).Round(time.Millisecond))
			b.Logf("BENCH|%s|%d pipelines: full poll cycle, mean (window x pipelines / polls)|%s|poll interval %s|%.2fx|", section, size,
				cycle.Round(10*time.Millisecond), poll, cycle.Seconds()/poll.Seconds())
			b.Logf("BENCH|%s|%d pipelines: longest any pipeline went unpolled|%s|poll interval %s|%.2fx|jitter is up to +10%%", section, size,
				worst.Round(10*time.Millisecond), poll, worst.Seconds()/poll.Seconds())
			b.Logf("BENCH|%s|%d pipelines: Kafka requests per cycle|%.0f (%.2f per pipeline)|||", section, size, perCycle, perCycle/float64(size))
			b.Logf("BENCH|%s|%d pipelines: memory growth, VmRSS / Go heap in use|%s / %s|||from %s / %s with no pipeline", section, size,
				mib(rss-min(rss, rss0)), mib(heap-min(heap, heap0)), mib(rss0), mib(heap0))
		}
	}
}
