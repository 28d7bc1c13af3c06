package runtime

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

type ackClaim struct {
	benchClaim
	id int32
}

func (c ackClaim) Partition() int32 { return c.id }

// ackFixture is a producer with no AsyncProducer and two partitions, offsets 0-4 of each in
// flight as forward jobs holding a slot of the window.
type ackFixture struct {
	pr    *producer
	parts [2]*partition
	jobs  [2][]*job
}

func newAckFixture(t *testing.T, perPartition int) *ackFixture {
	t.Helper()
	m := newMetrics("acks", "test")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := &ackFixture{pr: &producer{
		set: &settings{}, window: newByteGate(1 << 20), windowBytes: newByteGate(1 << 30),
		log: log, metrics: m, ctx: context.Background(),
	}}
	now := time.Now()
	for p := range f.parts {
		pt := newPartition(context.Background(), nil, nil, ackClaim{id: int32(p)}, log, m)
		ms := make([]*sarama.ConsumerMessage, perPartition)
		sizes := make([]int64, perPartition)
		for o := range ms {
			ms[o] = &sarama.ConsumerMessage{Topic: "in", Partition: int32(p), Offset: int64(o), Value: []byte("v")}
			sizes[o] = messageSize(ms[o])
		}
		if n, _ := pt.addAll(ms, sizes, now); n != perPartition {
			t.Fatalf("partition %d: %d offsets tracked, want %d", p, n, perPartition)
		}
		f.parts[p], f.jobs[p] = pt, newJobs(pt, ms, sizes, now)
		for _, j := range f.jobs[p] {
			if !f.pr.acquire(j, waiter{stop: j.part.revoked}) {
				t.Fatal("window refused a slot")
			}
		}
	}
	return f
}

// acks queues the acks of (partition, offset) pairs as the AsyncProducer returns them.
func (f *ackFixture) acks(pairs ...[2]int) chan *sarama.ProducerMessage {
	ch := make(chan *sarama.ProducerMessage, len(pairs))
	for _, p := range pairs {
		ch <- &sarama.ProducerMessage{Metadata: f.jobs[p[0]][p[1]]}
	}
	return ch
}

func (f *ackFixture) settle(t *testing.T, ch chan *sarama.ProducerMessage) {
	t.Helper()
	if !f.pr.ackedRun(<-ch, ch, newAckBatch()) {
		t.Fatal("ackedRun reported the channel closed")
	}
}

func (f *ackFixture) expect(t *testing.T, step string, marked, inFlight [2]int64) {
	t.Helper()
	for p, pt := range f.parts {
		pt.mu.Lock()
		got, n := pt.marked, int64(pt.inFlight)
		pt.mu.Unlock()
		if got != marked[p] || n != inFlight[p] {
			t.Errorf("%s: partition %d: marked %d with %d in flight, want %d with %d", step, p, got, n, marked[p], inFlight[p])
		}
	}
}

// Acks of two partitions, out of order within each, settled in one batch: each partition
// marks only past its own contiguous finished run, never past an unacknowledged offset.
func TestAckBatchNeverMarksPastUnacked(t *testing.T) {
	f := newAckFixture(t, 5)
	ch := f.acks([2]int{0, 3}, [2]int{1, 0}, [2]int{0, 0}, [2]int{1, 2}, [2]int{0, 1}, [2]int{1, 4})
	f.settle(t, ch)
	if len(ch) != 0 {
		t.Fatalf("%d acks left unsettled, want all taken into the batch", len(ch))
	}
	// Partition 0: 0, 1, 3 acked, 2 not: marks 2. Partition 1: 0, 2, 4 acked: marks 1.
	f.expect(t, "first batch", [2]int64{2, 1}, [2]int64{2, 2})
	if got := f.pr.unacked(); got != 4 {
		t.Errorf("window: %d slots taken after the first batch, want 4", got)
	}
	f.settle(t, f.acks([2]int{1, 3}, [2]int{0, 2}, [2]int{1, 1}))
	f.expect(t, "second batch", [2]int64{4, 5}, [2]int64{1, 0})
	f.settle(t, f.acks([2]int{0, 4}))
	f.expect(t, "third batch", [2]int64{5, 5}, [2]int64{0, 0})
	if got := f.pr.unacked(); got != 0 {
		t.Errorf("window: %d slots taken after every ack, want 0", got)
	}
	if got := f.pr.windowBytes.used.Load(); got != 0 {
		t.Errorf("window: %d bytes taken after every ack, want 0", got)
	}
	if got := scraped(t, f.pr.metrics, "kpipe_messages_processed_total", resultOK); got != 10 {
		t.Errorf("processed ok %v, want 10", got)
	}
	if got := scraped(t, f.pr.metrics, "kpipe_messages_in_flight", ""); got != 0 {
		t.Errorf("in flight gauge %v, want 0", got)
	}
}

// A batch takes at most maxAckBatch acks; the rest wait for the next one.
func TestAckBatchIsBounded(t *testing.T) {
	per := maxAckBatch/2 + 20
	f := newAckFixture(t, per)
	var pairs [][2]int
	for o := range per {
		pairs = append(pairs, [2]int{0, o}, [2]int{1, o})
	}
	ch := f.acks(pairs...)
	f.settle(t, ch)
	if want := len(pairs) - maxAckBatch; len(ch) != want {
		t.Fatalf("%d acks left after one batch, want %d", len(ch), want)
	}
	half := int64(maxAckBatch / 2)
	f.expect(t, "first batch", [2]int64{half, half}, [2]int64{int64(per) - half, int64(per) - half})
	f.settle(t, ch)
	f.expect(t, "second batch", [2]int64{int64(per), int64(per)}, [2]int64{0, 0})
	if got := scraped(t, f.pr.metrics, "kpipe_messages_processed_total", resultOK); got != float64(2*per) {
		t.Errorf("processed ok %v, want %d", got, 2*per)
	}
	if got := f.pr.unacked(); got != 0 {
		t.Errorf("window: %d slots taken after every ack, want 0", got)
	}
}

// Acks still queued when the AsyncProducer closes its channel are settled, and the close is
// reported.
func TestAckBatchSettlesBeforeClose(t *testing.T) {
	f := newAckFixture(t, 2)
	ch := f.acks([2]int{0, 1}, [2]int{0, 0}, [2]int{1, 0})
	close(ch)
	if f.pr.ackedRun(<-ch, ch, newAckBatch()) {
		t.Fatal("ackedRun missed the close of the channel")
	}
	f.expect(t, "after close", [2]int64{2, 1}, [2]int64{0, 1})
}

// ackSource is an AsyncProducer that only returns acks and errors, on the channels given.
type ackSource struct {
	sarama.AsyncProducer
	succ chan *sarama.ProducerMessage
	errs chan *sarama.ProducerError
}

func (s ackSource) Successes() <-chan *sarama.ProducerMessage { return s.succ }
func (s ackSource) Errors() <-chan *sarama.ProducerError      { return s.errs }

// sarama hands the acks over on an unbuffered channel, from the goroutine that sends the
// broker's next request: they are taken while the settling waits (here for a partition's
// lock), so sarama never waits for it. Settling on the receiving goroutine took two acks
// and blocked the third send until the lock was free.
func TestAcksAreTakenWhileSettlingWaits(t *testing.T) {
	f := newAckFixture(t, 5)
	f.pr.set.producerWindow = 10
	succ, errs := make(chan *sarama.ProducerMessage), make(chan *sarama.ProducerError)
	f.pr.async = ackSource{succ: succ, errs: errs}
	f.parts[0].mu.Lock()
	done := make(chan struct{})
	go func() { f.pr.run(); close(done) }()
	for o := range 5 {
		for p := range 2 {
			select {
			case succ <- &sarama.ProducerMessage{Metadata: f.jobs[p][o]}:
			case <-time.After(10 * time.Second): // not a speed bound: the send never completes
				f.parts[0].mu.Unlock()
				t.Fatalf("the ack of partition %d offset %d was not taken while settling waited", p, o)
			}
		}
	}
	f.parts[0].mu.Unlock()
	close(succ)
	close(errs)
	<-done
	f.expect(t, "after the run", [2]int64{5, 5}, [2]int64{0, 0})
	if got := f.pr.unacked(); got != 0 {
		t.Errorf("window: %d slots taken after every ack, want 0", got)
	}
}
