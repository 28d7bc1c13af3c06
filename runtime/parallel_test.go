package runtime

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestKeyOrderingRunsKeysInParallel runs one partition of messages with many keys through a
// handler that sleeps 5ms, with 32 workers and with 1, and asserts the ratio of the two
// processing times, measured in the same test.
func TestKeyOrderingRunsKeysInParallel(t *testing.T) {
	const n = 600
	elapsed := func(workers int) time.Duration {
		tc := newTestCluster(t, map[string]int32{"in": 1})
		in := input{topic: "in", n: n, keys: 300, partitions: 1}
		tc.produce(in, 0, n)
		var (
			mu          sync.Mutex
			first, last time.Time
			count       int
			done        = make(chan struct{})
		)
		h := HandlerFunc(func(context.Context, *Message) error {
			mu.Lock()
			if first.IsZero() {
				first = time.Now()
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			count++
			last = time.Now()
			if count == n {
				close(done)
			}
			return nil
		})
		spec := tc.baseSpec("par")
		spec["pool"] = map[string]any{"size": workers, "ordering": "Key"}
		spec["processor"] = map[string]any{"handler": map[string]any{"name": "sleep"}}
		spec["template"] = map[string]any{"image": "example.com/custom:1"}
		r := start(t, specJSON(t, spec), WithHandler(h))
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			t.Fatalf("pool %d: only %d of %d messages handled", workers, count, n)
		}
		r.stop(t)
		mu.Lock()
		defer mu.Unlock()
		return last.Sub(first)
	}
	one := elapsed(1)
	many := elapsed(32)
	ratio := float64(one) / float64(many)
	t.Logf("pool 1: %s, pool 32: %s, speed-up %.1fx", one, many, ratio)
	if ratio < 10 {
		t.Fatalf("32 workers on one partition with many keys are only %.1fx faster than 1 worker; want at least 10x", ratio)
	}
}
