package storm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe-io/kpipe/test/kafkatest"
)

// BenchmarkRebalanceGap measures what a scale change costs the partitions that do not
// move: `kpipe run` processes forward a steady stream on each of 12 partitions of a
// 3-broker cluster; the group is scaled from 12 replicas to 6 (SIGTERM, graceful) and back
// to 12. For each change it reports the longest gap between two forwarded messages of a
// partition that kept its owner (output timestamps, grouped by input partition), apart for
// the partitions led by the group's coordinator broker (their fetches used to share a
// connection with the member's JoinGroup, which the broker holds for the whole round), and
// the longest gap of the moved partitions; and the duplicates the whole run wrote (every
// scale-down is graceful). A kept gap of 0 means no such partition kept its owner.
//
//	go test ./test/storm -run '^$' -bench RebalanceGap -benchtime 1x -timeout 30m
//
// KPIPE_STORM_BIN names a kpipe binary to run instead of building this tree's (to compare
// builds in interleaved runs).
func BenchmarkRebalanceGap(b *testing.B) {
	for _, handler := range []time.Duration{0, 200 * time.Millisecond} {
		for _, strategy := range []string{"Range", "CooperativeSticky"} {
			name := strategy + "/forward"
			if handler > 0 {
				name = strategy + "/http-" + handler.String()
			}
			b.Run(name, func(b *testing.B) {
				for range b.N {
					g := measureGaps(b, strategy, handler)
					b.ReportMetric(g.down.kept.Seconds(), "down-kept-s")
					b.ReportMetric(g.down.keptCoord.Seconds(), "down-kept-coord-s")
					b.ReportMetric(g.down.moved.Seconds(), "down-moved-s")
					b.ReportMetric(g.up.kept.Seconds(), "up-kept-s")
					b.ReportMetric(g.up.keptCoord.Seconds(), "up-kept-coord-s")
					b.ReportMetric(g.up.moved.Seconds(), "up-moved-s")
					b.ReportMetric(float64(g.duplicates), "duplicates")
				}
			})
		}
	}
}

type gaps struct{ kept, keptCoord, moved time.Duration }

type gapRun struct {
	down, up   gaps
	duplicates int
}

// measureGaps runs one 12 → 6 → 12 cycle. With handler 0 the replicas forward to "out" and
// the times are the output records' timestamps; otherwise they post to an HTTP endpoint
// that takes handler per message, and the times are when the requests arrive.
func measureGaps(b *testing.B, strategy string, handler time.Duration) gapRun {
	kc, err := kafkatest.Start(3, partitions, "in", "out")
	if err != nil {
		b.Fatal(err)
	}
	defer kc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	spec := forwardSpec(kc.Addrs, strategy)
	var ep *endpoint
	if handler > 0 {
		ep = newEndpoint(handler)
		defer ep.Close()
		spec["processor"] = map[string]any{"http": map[string]any{"url": ep.URL}}
		spec["pool"] = map[string]any{"size": 32, "buffer": 16, "ordering": "Unordered"}
	}
	r := newReplicas(b, spec)
	defer r.stopAll()
	stop, produced := steadyLoad(ctx, b, kc)
	r.scaleTo(12)
	before := waitAssigned(ctx, b, kc, 12)
	time.Sleep(5 * time.Second)

	downAt := time.Now()
	r.scaleTo(6)
	afterDown := waitAssigned(ctx, b, kc, 6)
	time.Sleep(5 * time.Second)
	upAt := time.Now()
	r.scaleTo(12)
	afterUp := waitAssigned(ctx, b, kc, 12)
	time.Sleep(5 * time.Second)
	close(stop)
	n := <-produced

	adm := admin(b, kc)
	for behind(ctx, adm, kc) != 0 {
		time.Sleep(200 * time.Millisecond)
	}
	var byPartition map[int32][]time.Time
	var dups int
	if ep != nil {
		byPartition, dups = ep.times(n)
	} else {
		recs, err := kc.Records(ctx, "out")
		if err != nil {
			b.Fatal(err)
		}
		byPartition, dups = forwardTimes(recs, n)
	}
	run := gapRun{duplicates: dups}
	coord := coordinatorLed(ctx, b, adm)
	run.down = gapsOf(byPartition, kept(before, afterDown), coord, downAt, upAt)
	run.up = gapsOf(byPartition, kept(afterDown, afterUp), coord, upAt, time.Now())
	b.Logf("%s handler %v: 12→6 kept %v (coordinator's %v) moved %v; 6→12 kept %v (coordinator's %v) moved %v; %d duplicates of %d",
		strategy, handler, run.down.kept, run.down.keptCoord, run.down.moved, run.up.kept, run.up.keptCoord, run.up.moved, dups, n)
	return run
}

// endpoint is an HTTP processor that takes a fixed time per message and records when each
// arrived.
type endpoint struct {
	*httptest.Server
	mu      sync.Mutex
	arrived map[int][]time.Time
}

func newEndpoint(delay time.Duration) *endpoint {
	e := &endpoint{arrived: map[int][]time.Time{}}
	e.Server = httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		now := time.Now()
		body, _ := io.ReadAll(r.Body)
		if v, err := strconv.Atoi(string(body)); err == nil {
			e.mu.Lock()
			e.arrived[v] = append(e.arrived[v], now)
			e.mu.Unlock()
		}
		time.Sleep(delay)
	}))
	return e
}

// times are the arrival times of each input partition's messages, sorted, and the
// duplicates among the n messages.
func (e *endpoint) times(n int) (map[int32][]time.Time, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[int32][]time.Time{}
	dups := 0
	for v, ts := range e.arrived {
		if v >= n {
			continue
		}
		dups += len(ts) - 1
		out[int32(v%partitions)] = append(out[int32(v%partitions)], ts...)
	}
	for _, ts := range out {
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	}
	return out, dups
}

// steadyLoad writes one message to each partition every 50ms until stop closes, then
// sends the count. Message i goes to partition i%12.
func steadyLoad(ctx context.Context, b *testing.B, kc *kafkatest.Cluster) (chan struct{}, chan int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.Addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		b.Fatal(err)
	}
	stop, produced := make(chan struct{}), make(chan int, 1)
	go func() {
		defer cl.Close()
		n := 0
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				produced <- n
				return
			case <-t.C:
			}
			recs := make([]*kgo.Record, 0, partitions)
			for range partitions {
				recs = append(recs, &kgo.Record{Topic: "in", Partition: int32(n % partitions), Value: []byte(fmt.Sprintf("%08d", n))})
				n++
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				b.Error(err)
			}
		}
	}()
	return stop, produced
}

// waitAssigned waits until the group has the given members and every partition is assigned,
// and returns each partition's owner.
func waitAssigned(ctx context.Context, b *testing.B, kc *kafkatest.Cluster, members int) map[int32]string {
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.Addrs...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for ctx.Err() == nil {
		gs, err := adm.DescribeGroups(ctx, group)
		if err == nil && gs[group].State == "Stable" && len(gs[group].Members) == members {
			owner := map[int32]string{}
			for _, m := range gs[group].Members {
				a, _ := m.Assigned.AsConsumer()
				for _, t := range a.Topics {
					for _, p := range t.Partitions {
						owner[p] = m.MemberID
					}
				}
			}
			if len(owner) == partitions {
				return owner
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatal("the group never settled")
	return nil
}

// kept reports, per partition, whether it has the same owner in both assignments.
func kept(before, after map[int32]string) map[int32]bool {
	out := map[int32]bool{}
	for p, m := range before {
		out[p] = after[p] == m
	}
	return out
}

// forwardTimes are the output timestamps of each input partition, sorted, and the
// duplicates among the n messages.
func forwardTimes(recs []*kgo.Record, n int) (map[int32][]time.Time, int) {
	out := map[int32][]time.Time{}
	seen := make([]int, n)
	dups := 0
	for _, r := range recs {
		v, err := strconv.Atoi(string(r.Value))
		if err != nil || v >= n {
			continue
		}
		if seen[v]++; seen[v] > 1 {
			dups++
		}
		p := int32(v % partitions)
		out[p] = append(out[p], r.Timestamp)
	}
	for _, ts := range out {
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	}
	return out, dups
}

// coordinatorLed reports, per partition of "in", whether the group's coordinator leads it.
func coordinatorLed(ctx context.Context, b *testing.B, adm *kadm.Client) map[int32]bool {
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		b.Fatal(err)
	}
	md, err := adm.Metadata(ctx, "in")
	if err != nil {
		b.Fatal(err)
	}
	out := map[int32]bool{}
	for p, d := range md.Topics["in"].Partitions {
		out[p] = d.Leader == gs[group].Coordinator.NodeID
	}
	return out
}

// gapsOf is the longest gap between consecutive forwards within [from, to], over the kept
// partitions (apart for those the coordinator leads) and over the moved ones.
func gapsOf(times map[int32][]time.Time, kept, coord map[int32]bool, from, to time.Time) gaps {
	var g gaps
	for p, ts := range times {
		last := from
		var longest time.Duration
		for _, t := range ts {
			if t.Before(from) || t.After(to) {
				continue
			}
			longest = max(longest, t.Sub(last))
			last = t
		}
		switch {
		case kept[p] && coord[p]:
			g.keptCoord = max(g.keptCoord, longest)
		case kept[p]:
			g.kept = max(g.kept, longest)
		default:
			g.moved = max(g.moved, longest)
		}
	}
	return g
}
