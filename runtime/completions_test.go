package runtime

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
	. "github.com/onsi/gomega"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// oneWorker runs handle on a pool of one worker, as a pipeline's worker does (retries with
// a backoff of an hour, so a failed message waits), until the test ends.
func oneWorker(t *testing.T, m *metrics, handle HandlerFunc) *pool {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{set: &settings{maxAttempts: 3, initialBackoff: time.Hour, maxBackoff: time.Hour}, handler: handle,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: m, ctx: ctx}
	pl := newPool(kpipev1.OrderingUnordered, 64, 1, 1<<30)
	pl.start(ctx, 1, w.process)
	t.Cleanup(func() { cancel(); pl.wait() })
	return pl
}

// jobsOf are the jobs of offsets from to to-1 of pt, admitted (see admitted) now.
func jobsOf(pt *partition, from, to int64) []*job {
	var js []*job
	for o := from; o < to; o++ {
		js = append(js, &job{msg: &sarama.ConsumerMessage{Topic: "in", Partition: pt.id, Offset: o}, part: pt, offset: o, start: time.Now()})
	}
	return js
}

// submitted hands js to pl as one chunk, each holding a slot.
func submitted(t *testing.T, pl *pool, js []*job) {
	t.Helper()
	if n := acquireSlots(context.Background(), pl, len(js)); n != len(js) {
		t.Fatalf("took %d slots, want %d", n, len(js))
	}
	pl.submitAll(js)
}

// waitMarked waits until pt's finished messages reach offset want with none of those before
// it in flight, and fails the test after a few seconds.
func waitMarked(t *testing.T, pt *partition, want int64, inFlight int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pt.mu.Lock()
		marked, n := pt.marked, pt.inFlight
		pt.mu.Unlock()
		if marked == want && n == inFlight {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition %d: marked %d with %d in flight, want %d with %d", pt.id, marked, n, want, inFlight)
		}
		time.Sleep(time.Millisecond)
	}
}

// The messages a worker finished are recorded in their partition once it has nothing left to
// run, fewer than a run's worth as they are.
func TestFinishedMessagesAreRecordedBeforeTheWorkerWaits(t *testing.T) {
	m := newMetrics("p", "ns")
	pl := oneWorker(t, m, func(context.Context, *Message) error { return nil })
	pt := admitted(t, m, 0, 5)
	submitted(t, pl, jobsOf(pt, 0, 5))
	waitMarked(t, pt, 5, 0)
}

// A worker records a partition's finished messages before it starts a message of another
// partition: a handler that hangs there holds up nothing of the first.
func TestFinishedMessagesAreRecordedBeforeAnotherPartitionsMessage(t *testing.T) {
	m := newMetrics("p", "ns")
	hang := make(chan struct{})
	defer close(hang)
	pl := oneWorker(t, m, func(_ context.Context, msg *Message) error {
		if msg.Partition == 1 {
			<-hang
		}
		return nil
	})
	a, b := admitted(t, m, 0, 3), admitted(t, m, 1, 1)
	submitted(t, pl, append(jobsOf(a, 0, 3), jobsOf(b, 0, 1)...)) // one chunk: the worker runs them back to back
	waitMarked(t, a, 3, 0)
}

// A failed attempt records the partition's finished messages before it waits for its
// backoff, and at most maxPending wait to be recorded: here one message hangs after
// maxPending+2 that succeeded, and all but the two after the last full run are recorded.
func TestFinishedMessagesAreRecordedBeforeABackoffAndWhenARunIsFull(t *testing.T) {
	t.Run("backoff", func(t *testing.T) {
		m := newMetrics("p", "ns")
		pl := oneWorker(t, m, func(_ context.Context, msg *Message) error {
			if msg.Offset == 2 {
				return errors.New("fails, then waits an hour")
			}
			return nil
		})
		pt := admitted(t, m, 0, 3)
		submitted(t, pl, jobsOf(pt, 0, 3))
		waitMarked(t, pt, 2, 1)
	})
	t.Run("full", func(t *testing.T) {
		m := newMetrics("p", "ns")
		hang := make(chan struct{})
		defer close(hang)
		last := int64(maxPending + 2)
		pl := oneWorker(t, m, func(_ context.Context, msg *Message) error {
			if msg.Offset == last {
				<-hang
			}
			return nil
		})
		pt := admitted(t, m, 0, int(last)+1)
		submitted(t, pl, jobsOf(pt, 0, last+1))
		// The first maxPending are recorded when the run is full; the 2 after them wait with
		// the hanging message until the claims record them, as they do before each commit.
		waitMarked(t, pt, maxPending, 3)
		pl.recordFinished()
		waitMarked(t, pt, last, 1)
	})
}

// A partition released while a handler of it hangs commits the messages the hung handler's
// worker finished before it: drain records them once no handler of the partition can start.
func TestReleaseRecordsWhatAHungHandlersWorkerFinished(t *testing.T) {
	m := newMetrics("p", "ns")
	hang, started := make(chan struct{}), make(chan struct{})
	defer close(hang)
	pl := oneWorker(t, m, func(_ context.Context, msg *Message) error {
		if msg.Offset == 2 {
			close(started)
			<-hang
		}
		return nil
	})
	pt := admitted(t, m, 0, 3)
	submitted(t, pl, jobsOf(pt, 0, 3))
	<-started
	waitMarked(t, pt, -1, 3) // 0 and 1 finished, held by the worker now running 2
	pt.drain(context.Background(), 20*time.Millisecond, pl.recordFinished)
	waitMarked(t, pt, 2, 1)
}

// A pipeline commits every message finished before a handler that hangs, though the worker
// running it holds those of its partition it finished just before: the claims record them
// before the commit. One partition, Partition ordering: the worker runs offsets 0 to 4 back
// to back and hangs on 5, and the committed offset must reach 5.
func TestCommitIncludesWhatAHungHandlersWorkerFinished(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 1})
	tc.produce(input{topic: "in", n: 10, keys: 1, partitions: 1}, 0, 10)
	hang := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, msg *Message) error {
		if msg.Offset == 5 {
			select {
			case <-hang:
			case <-ctx.Done():
			}
		}
		return nil
	})
	spec := tc.handlerSpec("hung")
	spec["pool"] = map[string]any{"size": 1, "ordering": "Partition"}
	r := start(t, specJSON(t, spec), WithHandler(h))
	g.Eventually(func(g Gomega) {
		g.Expect(tc.records(g, "hung", "in", 1)[0].offset).To(Equal(int64(5)))
	}).WithTimeout(10 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	close(hang)
	r.stop(t)
}
