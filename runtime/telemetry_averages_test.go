package runtime

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/kpipe-io/kpipe/internal/telemetry"
)

// The operator reads a replica's capacity as the sum of its partitions' rates over its busy
// share (docs/scaling.md, "Measured capacity"). These tests change the replica's partitions
// and check that the records still give the capacity of the window they describe. The pool's
// workers are set busy or idle by hand, and the finished counts too: only the averaging is
// under test, with windows of real time (the busy share reads the monotonic clock).

const avgCommitInterval = 40 * time.Millisecond // tau 80ms, windows from 10ms

func averagingPool(workers int) *pool {
	pl := newPool("", 16, workers, 1<<20)
	pl.workers = workers
	setParked(pl, int32(workers))
	return pl
}

// setParked says how many of the pool's workers wait for work from now on.
func setParked(pl *pool, n int32) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.idleChangingLocked()
	pl.idle.Store(n)
}

func finish(pt *partition, n int64) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.fin.results[resultIndexOK] += uint64(n)
}

func recordAt(t *testing.T, w *telemetryWriter, pt *partition, now time.Time) telemetry.Record {
	t.Helper()
	r, err := telemetry.Decode(w.encode(pt, now))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A new member of a cooperative group owns nothing in its first session: its workers idle,
// its busy share near 0. When its partitions come, their rate and the busy share must
// describe the same window: the replica's capacity is what it did then, not twice that.
func TestTelemetryPartitionTakenOnByAnIdleReplica(t *testing.T) {
	g := NewWithT(t)
	pl := averagingPool(2)
	w := newTelemetryWriter("r", avgCommitInterval, pl)
	w.sample() // Setup
	time.Sleep(100 * time.Millisecond)
	w.sample() // a commit of the empty session
	window := time.Now()
	g.Expect(w.busy.value).To(BeNumerically("<", 0.01))

	pt := benchPartition()
	w.adopt(&pt.tel)
	from := time.Now()
	setParked(pl, 0) // both workers busy from now on
	time.Sleep(50 * time.Millisecond)
	finish(pt, 20)
	w.sample()
	now := time.Now()
	r := recordAt(t, w, pt, now)
	want := 20 / now.Sub(from).Seconds()
	// The window began at the last sample; the workers were busy from a little later (a
	// loaded machine may stretch the gap), and never before: the share is that of the window,
	// not diluted by the idle session before it.
	busy := now.Sub(from).Seconds() / now.Sub(window).Seconds()
	g.Expect(r.Busy).To(BeNumerically("~", busy, 0.05), "the workers were busy for %.3f of the window", busy)
	g.Expect(r.Rate/r.Busy).To(BeNumerically("~", want, want*0.1), "capacity of the window: rate %.0f, busy %.3f", r.Rate, r.Busy)
}

// A replica that gives up one of two partitions keeps its workers as busy on the other: its
// capacity stays what it was, the given-up partition's rate out of the sum and its work out
// of the busy share alike.
func TestTelemetryPartitionGivenUp(t *testing.T) {
	g := NewWithT(t)
	pl := averagingPool(2)
	setParked(pl, 0) // busy throughout
	w := newTelemetryWriter("r", avgCommitInterval, pl)
	w.sample()
	a, b := benchPartition(), benchPartition()
	w.adopt(&a.tel)
	w.adopt(&b.tel)
	last := time.Now()
	var ra telemetry.Record
	window := func(perPartition int64, pts ...*partition) float64 {
		time.Sleep(30 * time.Millisecond)
		for _, pt := range pts {
			finish(pt, perPartition)
		}
		w.sample()
		now := time.Now()
		ra = recordAt(t, w, a, now)
		for _, pt := range pts[1:] {
			recordAt(t, w, pt, now)
		}
		dt := now.Sub(last).Seconds()
		last = now
		return 20 / dt // what the replica did in the window
	}
	for range 4 {
		window(10, a, b) // windows of varying length: the averages are not one window's
	}
	w.partitionsChanged() // b released
	want := window(20, a)
	g.Expect(ra.Rate/ra.Busy).To(BeNumerically("~", want, want*0.1), "one partition left: rate %.0f, busy %.3f", ra.Rate, ra.Busy)
}
