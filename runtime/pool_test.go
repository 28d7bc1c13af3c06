package runtime

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// TestPoolLanes feeds the pool messages of 4 partitions and 20 keys from one goroutine per
// partition, as the consumer does, and checks each mode's promise: no two messages of a
// lane at once, in offset order, and every message processed once.
func TestPoolLanes(t *testing.T) {
	const partitions, keys, perPartition = 4, 20, 500
	for _, tt := range []struct {
		ordering kpipev1.Ordering
		lane     func(m *sarama.ConsumerMessage) string
	}{
		{kpipev1.OrderingPartition, func(m *sarama.ConsumerMessage) string { return strconv.Itoa(int(m.Partition)) }},
		{kpipev1.OrderingKey, func(m *sarama.ConsumerMessage) string { return strconv.Itoa(int(m.Partition)) + "/" + string(m.Key) }},
		{kpipev1.OrderingUnordered, nil},
	} {
		t.Run(string(tt.ordering), func(t *testing.T) {
			pl := newPool(tt.ordering, 4, 8)
			var (
				mu        sync.Mutex
				running   = map[string]bool{}
				last      = map[string]int64{}
				processed = map[[2]int64]int{}
				maxAtOnce int
				atOnce    int
			)
			ctx, cancel := context.WithCancel(context.Background())
			var done sync.WaitGroup
			done.Add(partitions * perPartition)
			pl.start(ctx, 8, func(j *job) {
				mu.Lock()
				atOnce++
				maxAtOnce = max(maxAtOnce, atOnce)
				processed[[2]int64{int64(j.msg.Partition), j.msg.Offset}]++
				var lane string
				if tt.lane != nil {
					lane = tt.lane(j.msg)
					if running[lane] {
						t.Errorf("lane %s runs two messages at once", lane)
					}
					if prev, ok := last[lane]; ok && j.msg.Offset < prev {
						t.Errorf("lane %s: offset %d after %d", lane, j.msg.Offset, prev)
					}
					running[lane], last[lane] = true, j.msg.Offset
				}
				mu.Unlock()
				time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
				mu.Lock()
				atOnce--
				if tt.lane != nil {
					running[lane] = false
				}
				mu.Unlock()
				done.Done()
			})
			var feeders sync.WaitGroup
			for p := range int32(partitions) {
				feeders.Go(func() {
					for o := range int64(perPartition) {
						m := &sarama.ConsumerMessage{Topic: "t", Partition: p, Offset: o, Key: []byte(strconv.Itoa(int(o) % keys))}
						if !pl.acquire(ctx) || !pl.submit(ctx, &job{msg: m}) {
							t.Error("pool refused a message")
							return
						}
					}
				})
			}
			feeders.Wait()
			done.Wait()
			cancel()
			pl.wait()
			for k, n := range processed {
				if n != 1 {
					t.Errorf("message %v processed %d times", k, n)
				}
			}
			if len(processed) != partitions*perPartition {
				t.Errorf("%d messages processed, want %d", len(processed), partitions*perPartition)
			}
			if len(pl.lanes) != 0 {
				t.Errorf("%d lanes left busy", len(pl.lanes))
			}
			t.Logf("%s: at most %d messages at once on 8 workers", tt.ordering, maxAtOnce)
		})
	}
}

func TestJitteredBackoff(t *testing.T) {
	initial, maxWait := 100*time.Millisecond, time.Second
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		for range 100 {
			got := jitteredBackoff(attempt, initial, maxWait)
			if got < want/2 || got > want {
				t.Fatalf("attempt %d: backoff %s outside [%s, %s]", attempt, got, want/2, want)
			}
		}
	}
}
