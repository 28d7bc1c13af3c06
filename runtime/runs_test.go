package runtime

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	. "github.com/onsi/gomega"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// runFixture is a pool whose partitions' messages go to runs, and the partitions.
type runFixture struct {
	pl    *pool
	parts []*partition
}

func newRunFixture(ordering kpipev1.Ordering, buffer, workers, partitions int) *runFixture {
	f := &runFixture{pl: newPool(ordering, buffer, workers, 1<<30)}
	f.pl.useRuns()
	m := newMetrics("runs", "test")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for p := range partitions {
		f.parts = append(f.parts, newPartition(context.Background(), nil, nil, ackClaim{id: int32(p)}, log, m))
	}
	return f
}

// submit hands messages of partition p, with the keys given, from offset from on, to the
// pool as one batch, taking their slots first (waiting for them) as a claim does.
func (f *runFixture) submit(ctx context.Context, t *testing.T, p int, from int64, keys ...string) {
	t.Helper()
	ms := make([]*sarama.ConsumerMessage, len(keys))
	for i, k := range keys {
		ms[i] = &sarama.ConsumerMessage{Topic: "t", Partition: int32(p), Offset: from + int64(i), Key: []byte(k)}
	}
	for taken := 0; taken < len(ms); {
		n := acquireSlots(ctx, f.pl, len(ms)-taken)
		if n == 0 {
			t.Error("the pool refused slots")
			return
		}
		taken += n
	}
	f.pl.submitRun(f.parts[p], ms, make([]int64, len(ms)), time.Now())
}

// recorder records the messages a pool's workers start, each as its label, and holds the one
// labelled hang until release.
type recorder struct {
	mu      sync.Mutex
	ran     []string // in the order they started
	release func()
}

func (r *recorder) ranNow() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ran...)
}

// startRecording starts the fixture's workers with a recorder; the pool stops when the test
// ends, the message held released first.
func (f *runFixture) startRecording(t *testing.T, workers int, label func(*sarama.ConsumerMessage) string, hang string) (context.Context, *recorder) {
	ctx, cancel := context.WithCancel(context.Background())
	held := make(chan struct{})
	rec := &recorder{release: sync.OnceFunc(func() { close(held) })}
	t.Cleanup(func() {
		rec.release()
		cancel()
		f.pl.wait()
	})
	f.pl.start(ctx, workers, func(j *job, _ *completions) {
		l := label(j.msg)
		rec.mu.Lock()
		rec.ran = append(rec.ran, l)
		rec.mu.Unlock()
		if l == hang {
			<-held
		}
	})
	return ctx, rec
}

// TestRunsKeepTheLanesPromises feeds runs the messages of 4 partitions and 20 keys from one
// goroutine per partition, in batches as the claims do, with a handler that takes up to
// 200µs, and checks each ordering's promise: no two messages of a lane at once, in offset
// order, and every message processed once. In Key ordering some runs spill into lanes and
// come back (the watchdog sees handlers of a few hundred microseconds as stalls only now and
// then), and the promise holds across both.
func TestRunsKeepTheLanesPromises(t *testing.T) {
	const partitions, keys, perPartition, batch = 4, 20, 2000, 16
	for _, tt := range []struct {
		ordering kpipev1.Ordering
		lane     func(m *sarama.ConsumerMessage) string
	}{
		{kpipev1.OrderingPartition, func(m *sarama.ConsumerMessage) string { return strconv.Itoa(int(m.Partition)) }},
		{kpipev1.OrderingKey, func(m *sarama.ConsumerMessage) string { return strconv.Itoa(int(m.Partition)) + "/" + string(m.Key) }},
	} {
		t.Run(string(tt.ordering), func(t *testing.T) {
			f := newRunFixture(tt.ordering, 64, 3, partitions)
			check := newLaneCheck(t, tt.lane)
			var spilled atomic.Int32 // messages run in the lanes
			ctx, cancel := context.WithCancel(context.Background())
			var done sync.WaitGroup
			done.Add(partitions * perPartition)
			f.pl.start(ctx, 3, func(j *job, _ *completions) {
				if j.spilled {
					spilled.Add(1)
				}
				lane := check.started(j.msg)
				if rand.IntN(50) == 0 {
					time.Sleep(time.Duration(rand.IntN(10_000)) * time.Microsecond) // now and then past a stall
				}
				check.ended(lane)
				done.Done()
			})
			var feeders sync.WaitGroup
			for p := range partitions {
				feeders.Go(func() {
					for from := 0; from < perPartition; from += batch {
						ks := make([]string, batch)
						for i := range ks {
							ks[i] = strconv.Itoa((from + i) % keys)
						}
						f.submit(ctx, t, p, int64(from), ks...)
					}
				})
			}
			feeders.Wait()
			done.Wait()
			cancel()
			f.pl.wait()
			expectEachOnce(t, check.processed, partitions*perPartition)
			if n := f.pl.busyLanes(); n != 0 {
				t.Errorf("%d lanes left busy", n)
			}
			for _, pt := range f.parts {
				if n := pt.run.inLanes.Load(); n != 0 {
					t.Errorf("partition %d: %d messages counted in the lanes after all finished", pt.id, n)
				}
			}
			t.Logf("%d of %d messages ran in the lanes", spilled.Load(), partitions*perPartition)
			if tt.ordering == kpipev1.OrderingKey && spilled.Load() == 0 {
				t.Error("no run spilled: the test did not cover the lanes")
			}
		})
	}
}

// TestRunSpillsAroundAHangingKey: in Key ordering, a message that hangs holds up only its
// key. The run spills: the partition's other keys, those submitted with it and those
// submitted after, run on the other worker, while the hanging key's later messages wait for
// it; once it is done they run in order, and the partition's next batch runs as a run again.
func TestRunSpillsAroundAHangingKey(t *testing.T) {
	g := NewWithT(t)
	f := newRunFixture(kpipev1.OrderingKey, 32, 2, 1)
	ctx, rec := f.startRecording(t, 2, func(m *sarama.ConsumerMessage) string {
		return string(m.Key) + "@" + strconv.FormatInt(m.Offset, 10)
	}, "h@1")
	ranNow, release := rec.ranNow, rec.release
	f.submit(ctx, t, 0, 0, "a", "h", "b", "h", "c")
	g.Eventually(ranNow, 5*time.Second).Should(ConsistOf("a@0", "h@1", "b@2", "c@4"), "the other keys run while h hangs")
	f.submit(ctx, t, 0, 5, "d", "h", "e")
	g.Eventually(ranNow, 5*time.Second).Should(ConsistOf("a@0", "h@1", "b@2", "c@4", "d@5", "e@7"),
		"a batch submitted while h hangs waits in the run, then goes to the lanes: its other keys run too")
	g.Consistently(ranNow, 100*time.Millisecond).ShouldNot(ContainElement(BeElementOf("h@3", "h@6")), "h's later messages wait for the one in flight")
	f.parts[0].run.mu.Lock()
	g.Expect(f.parts[0].run.spilled).To(BeTrue())
	f.parts[0].run.mu.Unlock()

	release()
	g.Eventually(ranNow, 5*time.Second).Should(HaveLen(8))
	g.Expect(ranNow()[6:]).To(Equal([]string{"h@3", "h@6"}), "h's messages in order, after the one that hung")
	g.Eventually(f.parts[0].run.inLanes.Load, 5*time.Second).Should(BeZero())
	g.Eventually(f.pl.busyLanes, 5*time.Second).Should(BeZero())

	f.submit(ctx, t, 0, 8, "f")
	g.Eventually(ranNow, 5*time.Second).Should(HaveLen(9))
	f.parts[0].run.mu.Lock()
	defer f.parts[0].run.mu.Unlock()
	g.Expect(f.parts[0].run.spilled).To(BeFalse(), "with nothing left in the lanes the partition runs again")
}

// TestRunHoldsUpOnlyItsPartition: in Partition ordering, a message that hangs holds up the
// rest of its partition, in order, and no other partition.
func TestRunHoldsUpOnlyItsPartition(t *testing.T) {
	g := NewWithT(t)
	f := newRunFixture(kpipev1.OrderingPartition, 32, 2, 2)
	ctx, rec := f.startRecording(t, 2, func(m *sarama.ConsumerMessage) string {
		return strconv.Itoa(int(m.Partition)) + "@" + strconv.FormatInt(m.Offset, 10)
	}, "0@1")
	ranNow, release := rec.ranNow, rec.release
	f.submit(ctx, t, 0, 0, "a", "b", "c")
	f.submit(ctx, t, 1, 0, "a", "b")
	f.submit(ctx, t, 0, 3, "d")
	f.submit(ctx, t, 1, 2, "c")
	g.Eventually(ranNow, 5*time.Second).Should(ConsistOf("0@0", "0@1", "1@0", "1@1", "1@2"))
	g.Consistently(ranNow, 100*time.Millisecond).Should(HaveLen(5), "partition 0 waits for its message in flight")
	release()
	g.Eventually(ranNow, 5*time.Second).Should(HaveLen(7))
	g.Expect(ranNow()[5:]).To(Equal([]string{"0@2", "0@3"}))
}

// TestRunsTakeTurns: with fewer workers than partitions, a worker leaves its run after a
// batch when other work is ready, so every partition's batches run in turn rather than one
// partition's all first.
func TestRunsTakeTurns(t *testing.T) {
	g := NewWithT(t)
	f := newRunFixture(kpipev1.OrderingPartition, 32, 1, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer f.pl.wait()
	defer cancel()
	gate := make(chan struct{})
	open := sync.OnceFunc(func() { close(gate) })
	defer open()
	var (
		mu    sync.Mutex
		parts []int32
	)
	f.pl.start(ctx, 1, func(j *job, _ *completions) {
		if j.msg.Offset == 0 && j.msg.Partition == 0 {
			<-gate // until every batch is submitted
		}
		mu.Lock()
		parts = append(parts, j.msg.Partition)
		mu.Unlock()
	})
	f.submit(ctx, t, 0, 0, "a")
	for b := range int64(3) {
		f.submit(ctx, t, 0, 1+b, "a")
		f.submit(ctx, t, 1, b, "a")
	}
	open()
	g.Eventually(func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(parts)
	}, 5*time.Second).Should(Equal(7))
	g.Expect(parts).To(Equal([]int32{0, 1, 0, 1, 0, 1, 0}), "one batch of a partition, then the other's")
}

// TestRunComesBackAfterAChanceSpill: a run that spilled because one message took a while
// starts again once the lanes are empty, though its partition is fed without a pause and
// the pool stays full: its claim's next batches wait in the run rather than join the lanes.
// About 100 messages run in the lanes here (those around the slow one); a run that did not
// come back would run all the rest there.
func TestRunComesBackAfterAChanceSpill(t *testing.T) {
	const n, batch = 20_000, 16
	f := newRunFixture(kpipev1.OrderingKey, 64, 2, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer f.pl.wait()
	defer cancel()
	var (
		done    sync.WaitGroup
		spilled atomic.Int32
	)
	done.Add(n)
	f.pl.start(ctx, 2, func(j *job, _ *completions) {
		if j.spilled {
			spilled.Add(1)
		}
		if j.msg.Offset == 100 {
			time.Sleep(10 * time.Millisecond) // long enough to spill (4-6 ms), then done
		} else {
			spin(20 * time.Microsecond) // a handler slower than the feeding: the pool stays full
		}
		done.Done()
	})
	for from := 0; from < n; from += batch {
		ks := make([]string, batch)
		for i := range ks {
			ks[i] = strconv.Itoa((from + i) % 50)
		}
		f.submit(ctx, t, 0, int64(from), ks...)
	}
	done.Wait()
	t.Logf("%d of %d messages ran in the lanes", spilled.Load(), n)
	if spilled.Load() == 0 {
		t.Fatal("the slow message did not spill its run: the test covers nothing")
	}
	if spilled.Load() > n/20 {
		t.Errorf("%d of %d messages ran in the lanes: the run did not come back", spilled.Load(), n)
	}
}

// spin keeps the CPU busy for d, as a handler that computes does; it returns the clock reads.
func spin(d time.Duration) (reads int) {
	start := time.Now()
	for time.Since(start) < d {
		reads++
	}
	return reads
}

// TestSpilledRunHoldsNewBatches: while a spilled run's messages are in the lanes, the
// batches its claim submits wait in the run, even those of keys that are free: they start
// once the lanes are empty. Before, they went to the lanes too, and a partition fed
// faster than the lanes emptied stayed in the lanes. The pool here has no watchdog: the test
// spills the run itself, and nothing moves held batches to the lanes.
func TestSpilledRunHoldsNewBatches(t *testing.T) {
	g := NewWithT(t)
	f := newRunFixture(kpipev1.OrderingKey, 32, 2, 1)
	f.pl.watchWake = nil // no watchdog
	ctx, rec := f.startRecording(t, 2, func(m *sarama.ConsumerMessage) string {
		return string(m.Key) + "@" + strconv.FormatInt(m.Offset, 10)
	}, "h@1")
	f.submit(ctx, t, 0, 0, "a", "h", "b")
	g.Eventually(rec.ranNow, 5*time.Second).Should(ContainElement("h@1"))
	f.pl.spill(f.parts[0].run)
	g.Eventually(rec.ranNow, 5*time.Second).Should(ConsistOf("a@0", "h@1", "b@2"), "b, not started, ran in the lanes")

	f.submit(ctx, t, 0, 3, "c", "h", "d")
	g.Consistently(rec.ranNow, 200*time.Millisecond).Should(HaveLen(3), "c and d wait in the run while h is in the lanes")
	r := f.parts[0].run
	r.mu.Lock()
	g.Expect(r.queue.len()).To(Equal(1))
	r.mu.Unlock()

	rec.release()
	g.Eventually(rec.ranNow, 5*time.Second).Should(HaveLen(6))
	g.Expect(rec.ranNow()[3:]).To(Equal([]string{"c@3", "h@4", "d@5"}), "the held batch ran, in order, once h was done")
	r.mu.Lock()
	defer r.mu.Unlock()
	g.Expect(r.spilled).To(BeFalse())
}
