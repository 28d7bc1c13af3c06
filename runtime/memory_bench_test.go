package runtime

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkForward1KiB measures kpipe forwarding 1 KiB messages (consume, produce,
// commit): 100k messages on 6 partitions, pool 8, Key ordering; output records per second
// from the first output record until all arrived or 10 s passed. It compares the memory
// budget's cost on small messages with the runtime before it (docs/benchmarks.md).
//
//	go test ./runtime -run '^$' -bench '^BenchmarkForward1KiB$' -benchtime 1x -v
func BenchmarkForward1KiB(b *testing.B) {
	const n = 100_000
	tc := newTestCluster(b, map[string]int32{"in1k": 6, "out1k": 6})
	produce1KiB(b, tc, "in1k", n)
	runs := 0
	best := 0.0
	for b.Loop() {
		out := "out1k"
		before := tc.countOutput(out)
		stop := runFor(forwarder(b, tc, "kpipe", "in1k", out, fmt.Sprintf("fw1k-%d", runs)))
		best = max(best, tc.outputRate(b, out, before+n, 10*time.Second))
		stop()
		runs++
	}
	b.ReportMetric(best, "kpipe-msgs/s")
	b.Logf("BENCH|forward 1 KiB|kpipe|%.0f msgs/s|%.1f MiB/s", best, best/1024)
}

// produce1KiB writes n records of 1 KiB to topic, round robin over its 6 partitions.
func produce1KiB(b *testing.B, tc *testCluster, topic string, n int) {
	b.Helper()
	value := make([]byte, 1024)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		r := &kgo.Record{Topic: topic, Partition: int32(i % 6), Key: []byte("k" + strconv.Itoa(i%600)), Value: value}
		tc.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
}
