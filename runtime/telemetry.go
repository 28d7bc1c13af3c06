package runtime

import (
	"math"
	"os"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/kpipe-io/kpipe/internal/telemetry"
	"github.com/kpipe-io/kpipe/runtime/offsets"
)

// The runtime writes a telemetry record (internal/telemetry, docs/runtime.md "Telemetry in
// the commit metadata") into the commit metadata of every partition it owns, at every
// commit, even when the offset did not move: the operator reads it from the OffsetFetch it
// already sends. This file measures what goes in it.
//
// Rate and Busy are exponentially weighted moving averages with a time constant of two commit
// intervals (2s by default): each commit adds the window since the last one, weighted
// 1-exp(-window/tau). So a record reflects the last commit interval or two, and one slow
// commit does not make it jump.

// telemetryWriter makes the records of one phase: the replica's name, and the busy share of
// the phase's worker pool, which every partition's record carries.
type telemetryWriter struct {
	replica string
	tau     time.Duration
	pool    *pool

	mu       sync.Mutex
	busy     ewma
	idleSeen int64 // the pool's idle worker-nanoseconds at seenAt
	seenAt   int64 // monoNow of the last window's end, 0 before the first
}

func newTelemetryWriter(replica string, commitInterval time.Duration, pl *pool) *telemetryWriter {
	return &telemetryWriter{replica: replica, tau: 2 * commitInterval, pool: pl}
}

// minWindow is the shortest window an average takes in: commits closer together than that
// (a partition released right after a periodic commit) reuse the last value.
func (w *telemetryWriter) minWindow() time.Duration { return w.tau / 8 }

// sample adds the pool's busy share since the last sample to its average. The share is
// 1 - (worker time parked waiting for work) / (workers x wall time): a worker counts as busy
// from the moment it takes a message until it parks, so handler calls, their retry waits and
// the hand-off to the producer all count. It costs nothing per message (see occupancy).
func (w *telemetryWriter) sample() {
	idle, workers, at := w.pool.idleTime()
	w.mu.Lock()
	defer w.mu.Unlock()
	dt := time.Duration(at - w.seenAt)
	if w.seenAt != 0 && dt < w.minWindow() {
		return
	}
	if w.seenAt != 0 && workers > 0 {
		share := 1 - float64(idle-w.idleSeen)/(float64(workers)*float64(dt))
		w.busy.add(min(max(share, 0), 1), dt, w.tau)
	}
	w.idleSeen, w.seenAt = idle, at
}

func (w *telemetryWriter) busyShare() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.busy.value
}

// encodeLocked is the record of pt at now, encoded; pt.mu is held.
func (w *telemetryWriter) encodeLocked(pt *partition, now time.Time) string {
	r := telemetry.Record{At: now, Replica: w.replica, Busy: w.busyShare(), State: telemetry.StateOK,
		Rate: pt.tel.rate(now, w.tau, w.minWindow()), InFlight: pt.inFlight}
	if oldest, ok := pt.tracker.Oldest(); ok && pt.inFlight > 0 {
		if at, ok := pt.tel.admittedAt(oldest); ok {
			r.OldestInFlight = now.Sub(at)
		}
		if st, ok := pt.tel.paused[oldest]; ok {
			r.State = st
		}
	}
	if s := pt.tracker.Stamp(); s != 0 && pt.marked >= 0 {
		r.LastTimestamp = time.UnixMilli(s)
	}
	return telemetry.Encode(r)
}

// encode is encodeLocked taking pt.mu.
func (w *telemetryWriter) encode(pt *partition, now time.Time) string {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return w.encodeLocked(pt, now)
}

// partitionTelemetry is what a partition measures for its records; under partition.mu.
type partitionTelemetry struct {
	done     int64     // messages finished in the claim (not those given up on)
	avg      ewma      // messages per second
	avgDone  int64     // done at avgSince
	avgSince time.Time // start of the current rate window
	// admits holds the first offset and the admission time of each batch admitted with
	// messages still in flight, oldest first: the age of the oldest message in flight costs a
	// look-up per commit, not a clock read per message.
	admits fifo[admitMark]
	// paused is the messages between two attempts (StateRetrying) and those whose dead letter
	// cannot be written (StateDeadLetterBlocked), by offset; nil until one is.
	paused map[int64]telemetry.State
}

type admitMark struct {
	first int64
	at    time.Time
}

func newPartitionTelemetry(now time.Time) partitionTelemetry {
	return partitionTelemetry{avgSince: now}
}

// rate adds the window since the last one to the rate's average, when it is long enough.
func (t *partitionTelemetry) rate(now time.Time, tau, minWindow time.Duration) float64 {
	if dt := now.Sub(t.avgSince); dt >= minWindow {
		t.avg.add(float64(t.done-t.avgDone)/dt.Seconds(), dt, tau)
		t.avgDone, t.avgSince = t.done, now
	}
	return t.avg.value
}

// finished records a message finished (ok) or given up on.
func (t *partitionTelemetry) finished(offset int64, ok bool) {
	if ok {
		t.done++
	}
	if len(t.paused) > 0 {
		delete(t.paused, offset)
	}
}

// admitted records a batch admitted at now whose first message is first.
func (t *partitionTelemetry) admitted(first int64, now time.Time) {
	t.admits.push(admitMark{first: first, at: now})
}

// forgetAdmitted drops the batches whose messages all finished, before more are added: the
// marks are then bounded by the batches in flight.
func (t *partitionTelemetry) forgetAdmitted(tr *offsets.Tracker) {
	if oldest, ok := tr.Oldest(); ok {
		t.admittedAt(oldest)
		return
	}
	for t.admits.len() > 0 {
		t.admits.pop()
	}
}

// admittedAt is when the message at offset oldest (the oldest in flight) was admitted; the
// batches before its own are dropped.
func (t *partitionTelemetry) admittedAt(oldest int64) (time.Time, bool) {
	q := &t.admits
	for q.len() >= 2 && q.items[q.head+1].first <= oldest {
		q.pop()
	}
	if q.len() == 0 {
		return time.Time{}, false
	}
	return q.peek().at, true
}

// pause records that the message at offset waits: between attempts, or for its dead letter
// to be written. A retry's pause ends with the wait (resume); a dead letter's when the message
// finishes.
func (pt *partition) pause(offset int64, st telemetry.State) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.tel.paused == nil {
		pt.tel.paused = map[int64]telemetry.State{}
	}
	pt.tel.paused[offset] = st
}

func (pt *partition) resume(offset int64) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	delete(pt.tel.paused, offset)
}

// stampOf is what the offset tracker keeps of a message: its record timestamp in unix
// milliseconds, 0 when it has none.
func stampOf(m *sarama.ConsumerMessage) int64 {
	if m.Timestamp.IsZero() {
		return 0
	}
	return max(m.Timestamp.UnixMilli(), 0)
}

// ewma is an exponentially weighted moving average of a quantity measured over windows of
// varying length: a window of length dt weighs 1-exp(-dt/tau). The first window sets it.
type ewma struct {
	value  float64
	primed bool
}

func (e *ewma) add(sample float64, dt, tau time.Duration) {
	if !e.primed {
		e.value, e.primed = sample, true
		return
	}
	e.value += (1 - math.Exp(-float64(dt)/float64(tau))) * (sample - e.value)
}

// occupancy integrates the pool's parked workers over time, under pool.mu. A worker parks
// and wakes under the pool's lock already, and only when it has nothing to run, so reading
// the clock there adds nothing to the hand-off of a message to a busy pool.
type occupancy struct {
	idleNanos int64 // worker-nanoseconds parked, up to at
	at        int64 // monoNow of the last change of pool.idle
}

// idleChangingLocked brings the integral up to now, before pool.idle changes; pl.mu is held.
func (pl *pool) idleChangingLocked() {
	now := monoNow()
	o := &pl.occupancy
	if o.at != 0 {
		o.idleNanos += int64(pl.idle.Load()) * (now - o.at)
	}
	o.at = now
}

// idleTime is the worker-nanoseconds spent parked up to at (monoNow), and the workers started.
func (pl *pool) idleTime() (idle int64, workers int, at int64) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.idleChangingLocked()
	return pl.occupancy.idleNanos, pl.workers, pl.occupancy.at
}

var monoBase = time.Now()

// monoNow is the monotonic clock in nanoseconds.
func monoNow() int64 { return int64(time.Since(monoBase)) + 1 }

// replicaName names this replica in its telemetry records and its transactional id: the
// instance given with WithInstance, else the host name, which Kubernetes sets to the pod name.
func replicaName(instance string) string {
	if instance == "" {
		instance = os.Getenv("HOSTNAME")
	}
	if instance == "" {
		instance, _ = os.Hostname()
	}
	return instance
}
