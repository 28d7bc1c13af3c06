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
	claims  *claimClock // when the claims forward (claimforward.go); nil otherwise

	mu       sync.Mutex
	busy     ewma
	idleSeen int64 // the pool's idle worker-nanoseconds at seenAt
	// the claims' feeding and waiting claim-nanoseconds at seenAt (claimClock)
	feedSeen, waitSeen int64
	seenAt             int64 // monoNow of the last window's end, 0 before the first
	// windowAt is the wall-clock time of seenAt: a partition taken on starts its rate's
	// window there, as the busy share's window does (adopt).
	windowAt time.Time
	// restart is set when the replica's partitions changed: the next window starts the busy
	// share and every partition's rate afresh (epoch counts those restarts; see adopt).
	restart bool
	epoch   int64
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
//
// When the claims forward (claimforward.go) the workers sit idle while the pod forwards at
// full speed: the share is then the larger of the workers' and the claims' (1 - time claims
// waited for messages / time they fed), so a pod whose claims always have a message at hand,
// or wait for the producer, reads busy.
func (w *telemetryWriter) sample() {
	idle, workers, at := w.pool.idleTime()
	feed, wait := w.claims.totals()
	w.mu.Lock()
	defer w.mu.Unlock()
	dt := time.Duration(at - w.seenAt)
	if w.seenAt != 0 && dt < w.minWindow() {
		return
	}
	if w.seenAt != 0 && workers > 0 {
		if w.restart {
			w.busy.primed, w.restart = false, false
			w.epoch++
		}
		share := 1 - float64(idle-w.idleSeen)/(float64(workers)*float64(dt))
		if fed := feed - w.feedSeen; fed > 0 {
			share = max(share, 1-float64(wait-w.waitSeen)/float64(fed))
		}
		w.busy.add(min(max(share, 0), 1), dt, w.tau)
	}
	w.idleSeen, w.seenAt, w.windowAt = idle, at, time.Now()
	w.feedSeen, w.waitSeen = feed, wait
}

// averages are the busy share and the restarts of the averages so far.
func (w *telemetryWriter) averages() (busy float64, epoch int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.busy.value, w.epoch
}

// adopt prepares the averages of a partition the replica takes on, before it is shared: its
// rate's window starts where the busy share's current one did, and the next window starts
// every average afresh. The operator divides the sum of a replica's partitions' rates by its
// busy share (docs/scaling.md, "Measured capacity"), so both must weigh the same past. They did
// not when the replica's partitions changed: a partition's rate began with its own first
// window while the busy share carried the replica's history. A new member of a cooperative
// group owns nothing in its first session, so its busy share starts near 0 and its rates at
// full speed: 161 msg/s read for replicas that can do at most 80 (test/e2e, "a lag time target
// on real pods"). A partition given up takes its rate out of the sum while its work stays in
// the busy share, which read low; released (see partitionsChanged) restarts the averages too.
func (w *telemetryWriter) adopt(t *partitionTelemetry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.windowAt.IsZero() {
		t.avgSince = w.windowAt
	}
	t.epoch = w.epoch
	w.restart = true
}

// partitionsChanged restarts the averages at the next window: the replica gave up a
// partition (see adopt).
func (w *telemetryWriter) partitionsChanged() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.restart = true
}

// encodeLocked is the record of pt at now, encoded; pt.mu is held.
func (w *telemetryWriter) encodeLocked(pt *partition, now time.Time) string {
	busy, epoch := w.averages()
	r := telemetry.Record{At: now, Replica: w.replica, Busy: busy, State: telemetry.StateOK,
		Rate: pt.tel.rate(pt.fin.finished(), now, epoch, w.tau, w.minWindow()), InFlight: pt.inFlight}
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
	avg      ewma      // messages per second
	avgDone  int64     // messages finished in the claim at avgSince (finishedTally.finished)
	avgSince time.Time // start of the current rate window
	epoch    int64     // the telemetryWriter's epoch the average belongs to
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

// rate adds the window since the last one to the rate's average, when it is long enough;
// done is the messages finished in the claim so far (not those given up on). A new epoch
// (the writer restarted its averages, see adopt) starts the average afresh.
func (t *partitionTelemetry) rate(done int64, now time.Time, epoch int64, tau, minWindow time.Duration) float64 {
	if dt := now.Sub(t.avgSince); dt >= minWindow {
		if t.epoch != epoch {
			t.avg.primed, t.epoch = false, epoch
		}
		t.avg.add(float64(done-t.avgDone)/dt.Seconds(), dt, tau)
		t.avgDone, t.avgSince = done, now
	}
	return t.avg.value
}

// finished records a message finished or given up on: it is no longer paused.
func (t *partitionTelemetry) finished(offset int64) {
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

// claimClock integrates, over time, the claims feeding their partitions and those of them
// waiting for a message, for the busy share when the claims forward (claimforward.go). A claim changes it
// when it starts and stops feeding and around a wait for a message it did not find at hand,
// which parks the claim anyway; a nil clock does nothing.
type claimClock struct {
	mu               sync.Mutex
	feeding, waiting int64
	fedNanos         int64 // claim-nanoseconds feeding, up to at
	waitNanos        int64 // of them, waiting for a message
	at               int64 // monoNow of the last change
}

// change adds dFeeding claims feeding and dWaiting waiting, from now.
func (c *claimClock) change(dFeeding, dWaiting int64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advanceLocked()
	c.feeding += dFeeding
	c.waiting += dWaiting
}

func (c *claimClock) advanceLocked() {
	now := monoNow()
	if c.at != 0 {
		c.fedNanos += c.feeding * (now - c.at)
		c.waitNanos += c.waiting * (now - c.at)
	}
	c.at = now
}

// totals are the claim-nanoseconds fed and waited up to now; 0 for a nil clock.
func (c *claimClock) totals() (fed, waited int64) {
	if c == nil {
		return 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advanceLocked()
	return c.fedNanos, c.waitNanos
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
