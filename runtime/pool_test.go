package runtime

import (
	"context"
	"math/rand/v2"
	"slices"
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
			pl := newPool(tt.ordering, 4, 8, 1<<30)
			check := newLaneCheck(t, tt.lane)
			var (
				mu        sync.Mutex
				maxAtOnce int
				atOnce    int
			)
			ctx, cancel := context.WithCancel(context.Background())
			var done sync.WaitGroup
			done.Add(partitions * perPartition)
			pl.start(ctx, 8, func(j *job, _ *completions) {
				mu.Lock()
				atOnce++
				maxAtOnce = max(maxAtOnce, atOnce)
				mu.Unlock()
				lane := check.started(j.msg)
				time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
				check.ended(lane)
				mu.Lock()
				atOnce--
				mu.Unlock()
				done.Done()
			})
			var feeders sync.WaitGroup
			for p := range int32(partitions) {
				feeders.Go(func() {
					for o := range int64(perPartition) {
						m := &sarama.ConsumerMessage{Topic: "t", Partition: p, Offset: o, Key: []byte(strconv.Itoa(int(o) % keys))}
						if !pl.acquire(ctx) {
							t.Error("pool refused a message")
							return
						}
						pl.submit(&job{msg: m})
					}
				})
			}
			feeders.Wait()
			done.Wait()
			cancel()
			pl.wait()
			expectEachOnce(t, check.processed, partitions*perPartition)
			if n := pl.busyLanes(); n != 0 {
				t.Errorf("%d lanes left busy", n)
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

// TestPoolBatches feeds the pool in batches, as the consumer does (as many slots as are
// free, up to 64, then the messages of one partition submitted together), and checks that
// lanes keep their order, every message is processed once, and the pool never holds more
// messages than its slots.
func TestPoolBatches(t *testing.T) {
	const partitions, keys, perPartition, buffer, workers = 3, 5, 2000, 4, 3
	for _, ordering := range []kpipev1.Ordering{kpipev1.OrderingPartition, kpipev1.OrderingKey, kpipev1.OrderingUnordered} {
		t.Run(string(ordering), func(t *testing.T) {
			pl := newPool(ordering, buffer, workers, 1<<30)
			var (
				mu          sync.Mutex
				outstanding int // slots taken by the feeders minus messages processed
				most        int
				running     = map[testLane]bool{}
				last        = map[testLane]int64{}
				processed   = map[[2]int64]int{}
			)
			ctx, cancel := context.WithCancel(context.Background())
			var done sync.WaitGroup
			done.Add(partitions * perPartition)
			pl.start(ctx, workers, func(j *job, _ *completions) {
				lane := testLane{partition: j.msg.Partition}
				if ordering == kpipev1.OrderingKey {
					lane.key = string(j.msg.Key)
				}
				mu.Lock()
				processed[[2]int64{int64(j.msg.Partition), j.msg.Offset}]++
				if ordering != kpipev1.OrderingUnordered {
					if running[lane] {
						t.Errorf("lane %v runs two messages at once", lane)
					}
					if prev, ok := last[lane]; ok && j.msg.Offset <= prev {
						t.Errorf("lane %v: offset %d after %d", lane, j.msg.Offset, prev)
					}
					running[lane], last[lane] = true, j.msg.Offset
				}
				mu.Unlock()
				if rand.IntN(10) == 0 {
					time.Sleep(time.Duration(rand.IntN(100)) * time.Microsecond)
				}
				mu.Lock()
				running[lane] = false
				outstanding--
				mu.Unlock()
				done.Done()
			})
			var feeders sync.WaitGroup
			for p := range int32(partitions) {
				feeders.Go(func() {
					for o := int64(0); o < perPartition; {
						n := acquireSlots(ctx, pl, 64)
						if n == 0 {
							t.Error("pool refused a message")
							return
						}
						mu.Lock()
						outstanding += n
						most = max(most, outstanding)
						if outstanding > buffer+workers {
							t.Errorf("%d messages held by the pool, more than its %d slots", outstanding, buffer+workers)
						}
						mu.Unlock()
						// Sometimes fewer messages are at hand than slots were taken.
						use := min(n, rand.IntN(n)+1, int(perPartition-o))
						mu.Lock()
						outstanding -= n - use
						mu.Unlock()
						pl.release(n-use, 0)
						js := make([]*job, 0, use)
						for range use {
							js = append(js, &job{msg: &sarama.ConsumerMessage{Topic: "t", Partition: p, Offset: o, Key: []byte(strconv.Itoa(int(o) % keys))}})
							o++
						}
						pl.submitAll(js)
					}
				})
			}
			feeders.Wait()
			done.Wait()
			cancel()
			pl.wait()
			expectEachOnce(t, processed, partitions*perPartition)
			if n, held := pl.busyLanes(), pl.held.Load(); n != 0 || held != 0 {
				t.Errorf("%d lanes left busy, %d slots held", n, held)
			}
			t.Logf("%s: at most %d of %d slots taken", ordering, most, buffer+workers)
		})
	}
}

type testLane struct {
	partition int32
	key       string
}

// TestPoolAcquireEndsWithContext: a consumer waiting for a slot of a full pool gives up when
// its context ends, and a slot given back lets the next one in.
func TestPoolAcquireEndsWithContext(t *testing.T) {
	pl := newPool(kpipev1.OrderingKey, 1, 1, 1<<30)
	if n := acquireSlots(context.Background(), pl, 5); n != 2 {
		t.Fatalf("took %d slots of an empty pool of 2, want 2", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan int)
	go func() { got <- acquireSlots(ctx, pl, 1) }()
	cancel()
	if n := <-got; n != 0 {
		t.Fatalf("took %d slots of a full pool after the context ended", n)
	}
	go func() { got <- acquireSlots(context.Background(), pl, 3) }()
	pl.release(1, 0)
	if n := <-got; n != 1 {
		t.Fatalf("took %d slots after one was given back, want 1", n)
	}
}

// BenchmarkPoolHandoff measures the pool's cost per message with a no-op processor: 6
// feeders (one per partition, as the consumer runs) submit batches of up to 8 messages of
// 100 keys each to 8 workers, Key ordering, buffer 16.
//
//	go test ./runtime -run '^$' -bench '^BenchmarkPoolHandoff$'
func BenchmarkPoolHandoff(b *testing.B) {
	const partitions, workers, buffer, batch = 6, 8, 16, 8
	pl := newPool(kpipev1.OrderingKey, buffer, workers, 1<<30)
	ctx := b.Context()
	var done sync.WaitGroup
	pl.start(ctx, workers, func(*job, *completions) { done.Done() })
	keys := make([][]byte, 100)
	for i := range keys {
		keys[i] = []byte(strconv.Itoa(i))
	}
	per := b.N/partitions + 1
	done.Add(per * partitions)
	b.ResetTimer()
	var feeders sync.WaitGroup
	for p := range int32(partitions) {
		feeders.Go(func() {
			for o := 0; o < per; {
				n := acquireSlots(ctx, pl, min(batch, per-o))
				js := make([]*job, 0, n) // the pool's once submitted
				for range n {
					js = append(js, &job{msg: &sarama.ConsumerMessage{Topic: "t", Partition: p, Offset: int64(o), Key: keys[o%len(keys)]}})
					o++
				}
				pl.submitAll(js)
			}
		})
	}
	feeders.Wait()
	done.Wait()
}

// TestPoolHangingMessageHoldsOnlyItsLane: while one message hangs on a worker, the messages
// of other lanes submitted with it in one batch all run on the other worker.
func TestPoolHangingMessageHoldsOnlyItsLane(t *testing.T) {
	pl := newPool(kpipev1.OrderingKey, 16, 2, 1<<30)
	ctx, cancel := context.WithCancel(context.Background())
	defer pl.wait()
	defer cancel()
	hang := make(chan struct{})
	var others sync.WaitGroup
	others.Add(10)
	pl.start(ctx, 2, func(j *job, _ *completions) {
		if string(j.msg.Key) == "hang" {
			<-hang
			return
		}
		others.Done()
	})
	js := []*job{{msg: &sarama.ConsumerMessage{Topic: "t", Key: []byte("hang")}}}
	for i := range 10 {
		js = append(js, &job{msg: &sarama.ConsumerMessage{Topic: "t", Offset: int64(i + 1), Key: []byte(strconv.Itoa(i))}})
	}
	if n := acquireSlots(ctx, pl, len(js)); n != len(js) {
		t.Fatalf("took %d slots, want %d", n, len(js))
	}
	pl.submitAll(js)
	others.Wait() // hangs, and the test times out, if a message waits behind the hanging one
	close(hang)
}

// laneCheck checks an ordering's promise as a pool's workers start and end messages: no
// two messages of a lane at once, in offset order; it counts each message processed.
type laneCheck struct {
	t         *testing.T
	lane      func(m *sarama.ConsumerMessage) string // a message's lane; nil in Unordered
	mu        sync.Mutex
	running   map[string]bool
	last      map[string]int64
	processed map[[2]int64]int
}

func newLaneCheck(t *testing.T, lane func(m *sarama.ConsumerMessage) string) *laneCheck {
	return &laneCheck{t: t, lane: lane, running: map[string]bool{}, last: map[string]int64{}, processed: map[[2]int64]int{}}
}

// started checks m as a worker starts it and returns its lane.
func (c *laneCheck) started(m *sarama.ConsumerMessage) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.processed[[2]int64{int64(m.Partition), m.Offset}]++
	if c.lane == nil {
		return ""
	}
	lane := c.lane(m)
	if c.running[lane] {
		c.t.Errorf("lane %s runs two messages at once", lane)
	}
	if prev, ok := c.last[lane]; ok && m.Offset < prev {
		c.t.Errorf("lane %s: offset %d after %d", lane, m.Offset, prev)
	}
	c.running[lane], c.last[lane] = true, m.Offset
	return lane
}

// ended records that the worker is done with the message of lane.
func (c *laneCheck) ended(lane string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running[lane] = false
}

// expectEachOnce checks that want distinct messages were processed, each exactly once.
func expectEachOnce(t *testing.T, processed map[[2]int64]int, want int) {
	t.Helper()
	for k, n := range processed {
		if n != 1 {
			t.Errorf("message %v processed %d times", k, n)
		}
	}
	if len(processed) != want {
		t.Errorf("%d messages processed, want %d", len(processed), want)
	}
}

// acquireSlots takes slots as the consumer does, for messages counted as no bytes.
func acquireSlots(ctx context.Context, pl *pool, n int) int {
	n, room := pl.acquireUpTo(ctx, n, 0)
	pl.release(0, room)
	return n
}

// acquire takes one slot, as a test's single message needs; false when ctx ended first. The
// claims take slots in batches (acquireUpTo).
func (pl *pool) acquire(ctx context.Context) bool {
	n, room := pl.acquireUpTo(ctx, 1, 0)
	pl.release(0, room)
	return n == 1
}

// submit hands one message (holding a slot) to the pool.
func (pl *pool) submit(j *job) { pl.submitAll([]*job{j}) }

// busyLanes counts the lanes with messages in the pool.
func (pl *pool) busyLanes() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	n := 0
	for _, ln := range pl.lanes {
		if ln.queued.Load() != 0 {
			n++
		}
	}
	return n
}

// TestPoolWakesConsumerWhenNothingIsReady: consumers waiting for a slot are woken in
// batches (a refill's worth of free slots), but never left waiting while a slot is free and
// the workers have nothing to run. Here one message hangs, two wait behind it in its lane,
// and the only other one finishes: one slot of four is free, fewer than a refill.
func TestPoolWakesConsumerWhenNothingIsReady(t *testing.T) {
	pl := newPool(kpipev1.OrderingKey, 2, 2, 1<<30)
	ctx, cancel := context.WithCancel(context.Background())
	defer pl.wait()
	defer cancel()
	hang := make(chan struct{})
	defer close(hang)
	pl.start(ctx, 2, func(j *job, _ *completions) {
		if string(j.msg.Key) == "hang" {
			<-hang
			return
		}
		for pl.spaceWait.Load() == 0 { // finish only once the consumer waits
			time.Sleep(time.Millisecond)
		}
	})
	var js []*job
	for i, key := range []string{"hang", "hang", "hang", "other"} {
		js = append(js, &job{msg: &sarama.ConsumerMessage{Topic: "t", Offset: int64(i), Key: []byte(key)}})
	}
	if n := acquireSlots(ctx, pl, len(js)); n != len(js) {
		t.Fatalf("took %d slots, want %d", n, len(js))
	}
	pl.submitAll(js)
	got := make(chan int, 1)
	go func() { got <- acquireSlots(ctx, pl, 4) }()
	select {
	case n := <-got:
		if n != 1 {
			t.Fatalf("took %d slots, want the 1 free", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a consumer waited with a slot free and nothing ready to run")
	}
}

// TestPoolLaneContinuationSharesWorkers: a worker runs a lane's next messages itself, but at
// most maxRun in a row: then the lane goes behind the messages other lanes have ready. One
// worker, Partition ordering: 200 messages of partition 0, then one of partition 1, which
// runs after maxRun of partition 0's, not after all of them.
func TestPoolLaneContinuationSharesWorkers(t *testing.T) {
	pl := newPool(kpipev1.OrderingPartition, 300, 1, 1<<30)
	ctx, cancel := context.WithCancel(context.Background())
	defer pl.wait()
	defer cancel()
	var order []int32
	var done sync.WaitGroup
	done.Add(201)
	release := make(chan struct{})
	pl.start(ctx, 1, func(j *job, _ *completions) {
		<-release
		order = append(order, j.msg.Partition) // one worker: no other goroutine writes
		done.Done()
	})
	var js []*job
	for o := range int64(200) {
		js = append(js, &job{msg: &sarama.ConsumerMessage{Topic: "t", Partition: 0, Offset: o}})
	}
	if n := acquireSlots(ctx, pl, 201); n != 201 {
		t.Fatalf("took %d slots, want 201", n)
	}
	pl.submitAll(js)
	pl.submitAll([]*job{{msg: &sarama.ConsumerMessage{Topic: "t", Partition: 1}}})
	close(release)
	done.Wait()
	at := slices.Index(order, 1)
	if at != maxRun {
		t.Fatalf("partition 1's message ran after %d of partition 0's, want %d", at, maxRun)
	}
}

// TestPoolSweepsIdleLanes: lanes are kept while they have messages and swept once idle, so
// the pool's map grows with the lanes in use, not with every key seen.
func TestPoolSweepsIdleLanes(t *testing.T) {
	const keys = 5000
	pl := newPool(kpipev1.OrderingKey, 64, 4, 1<<30)
	ctx, cancel := context.WithCancel(context.Background())
	defer pl.wait()
	defer cancel()
	var done sync.WaitGroup
	done.Add(keys)
	pl.start(ctx, 4, func(*job, *completions) { done.Done() })
	for o := 0; o < keys; {
		n := acquireSlots(ctx, pl, min(64, keys-o))
		js := make([]*job, 0, n)
		for range n {
			js = append(js, &job{msg: &sarama.ConsumerMessage{Topic: "t", Offset: int64(o), Key: []byte(strconv.Itoa(o))}})
			o++
		}
		pl.submitAll(js)
	}
	done.Wait()
	// A worker leaves a message's lane after process returns: once the workers stopped,
	// every lane was left.
	cancel()
	pl.wait()
	pl.mu.Lock()
	n := len(pl.lanes)
	pl.mu.Unlock()
	if n >= 2*minLaneSweep {
		t.Fatalf("%d lanes kept after %d keys, all idle; want fewer than %d", n, keys, 2*minLaneSweep)
	}
	if b := pl.busyLanes(); b != 0 {
		t.Fatalf("%d lanes busy after every message was done", b)
	}
}
