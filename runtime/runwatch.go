package runtime

import (
	"context"
	"slices"
	"time"

	"github.com/IBM/sarama"
)

// The watchdog of Key ordering's runs (runs.go): it spills a run whose worker stalls, and
// moves the batches of a run held behind the lanes to the lanes when they do not empty.

// runStallTick and runStallTicks: a run whose worker finished no message for runStallTicks
// ticks, while messages wait behind it, is spilled into lanes (Key ordering).
const (
	runStallTick  = 2 * time.Millisecond
	runStallTicks = 2
)

// watchIdleTicks is the ticks with no worker in a run after which the watchdog sleeps until
// a worker starts one.
const watchIdleTicks = 64

// spill moves the messages of r not started to the lanes (runs.go); the message its
// worker is in keeps its key's lane until the worker is done with it.
func (pl *pool) spill(r *partRun) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spilled {
		return // nothing enters the run until the claim runs it again
	}
	var (
		rest     []*job
		inFlight *sarama.ConsumerMessage
	)
	if b := r.cur; b != nil {
		k := min(int(b.next.Swap(int32(len(b.ms)))), len(b.ms))
		if k > 0 {
			inFlight = b.ms[k-1]
		}
		rest = append(rest, admittedJobs(r.pt, b.ms[k:], b.sizes[k:], b.start)...)
	}
	rest = r.queuedJobsLocked(rest)
	if len(rest) == 0 {
		return
	}
	r.spilled = true
	pl.toLanesLocked(r, rest, inFlight)
}

// queuedJobsLocked appends the jobs of r's batches not started to rest and empties its
// queue; r.mu is held.
func (r *partRun) queuedJobsLocked(rest []*job) []*job {
	for r.queue.len() > 0 {
		b := r.queue.pop()
		r.pt.leftLanes(int32(len(b.ms)))
		rest = append(rest, admittedJobs(r.pt, b.ms, b.sizes, b.start)...)
	}
	return rest
}

// toLanesLocked puts jobs of r's partition in the lanes, counted in inLanes, and, when the
// run's worker is in a message (inFlight), that message in its key's lane until the worker
// hands it over; r.mu is held.
func (pl *pool) toLanesLocked(r *partRun, js []*job, inFlight *sarama.ConsumerMessage) {
	for _, j := range js {
		j.spilled = true
	}
	pl.nameLanes(js)
	r.inLanes.Add(int32(len(js)))
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if inFlight != nil {
		r.inLanes.Add(1)
		r.handover = pl.occupyLaneLocked(pl.laneOf(inFlight))
	}
	if ready := pl.enterLanesLocked(js); len(ready) > 0 {
		pl.pushReadyLocked(&chunk{jobs: ready})
		pl.wakeLocked()
	}
}

// watchHeld has the watchdog look at held run r (runs.go).
func (pl *pool) watchHeld(r *partRun) {
	pl.mu.Lock()
	pl.heldRuns = append(pl.heldRuns, r)
	pl.mu.Unlock()
	pl.wakeWatchdog()
}

// lookAtHeld is the watchdog's look at the held runs: a run whose batches were held for
// runStallTicks looks has them moved to the lanes; one no longer held is forgotten. It
// reports whether any run is still held.
func (pl *pool) lookAtHeld() bool {
	pl.mu.Lock()
	if len(pl.heldRuns) == 0 {
		pl.mu.Unlock()
		return false
	}
	held := slices.Clone(pl.heldRuns)
	pl.mu.Unlock()
	still := held[:0]
	for _, r := range held {
		if pl.lookAtHeldRun(r) {
			still = append(still, r)
		}
	}
	// Claims only append: the runs added since the look follow those looked at.
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.heldRuns = append(still, pl.heldRuns[len(held):]...)
	return len(pl.heldRuns) > 0
}

// lookAtHeldRun moves r's held batches to the lanes once they were held for runStallTicks
// looks; false once r is no longer held.
func (pl *pool) lookAtHeldRun(r *partRun) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.spilled {
		r.watched = false
		return false
	}
	if r.queue.len() == 0 {
		return true
	}
	if r.heldTicks++; r.heldTicks >= runStallTicks {
		r.heldTicks, r.direct = 0, true
		pl.toLanesLocked(r, r.queuedJobsLocked(nil), nil)
	}
	return true
}

// watchRuns is the watchdog of Key ordering's runs: every runStallTick it looks at the run
// each worker is in, and spills one whose worker finished no message for runStallTicks ticks.
// It sleeps while no worker is in a run.
func (pl *pool) watchRuns(ctx context.Context) {
	t := time.NewTicker(runStallTick)
	defer t.Stop()
	type seen struct {
		run      *partRun
		progress uint32
		stalls   int
	}
	var (
		last []seen
		idle int
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		slots := pl.runSlotsNow()
		last = append(last, make([]seen, len(slots)-len(last))...)
		busy := false
		for i, s := range slots {
			r, w := s.run.Load(), &last[i]
			if r == nil || r != w.run {
				*w = seen{run: r}
				if r != nil {
					w.progress = r.progress.Load()
				}
				busy = busy || r != nil
				continue
			}
			busy = true
			if p := r.progress.Load(); p != w.progress {
				w.progress, w.stalls = p, 0
				continue
			}
			if w.stalls++; w.stalls >= runStallTicks {
				pl.spill(r)
				w.stalls = 0
			}
		}
		idle++
		if pl.lookAtHeld() || busy {
			idle = 0
		}
		if idle >= watchIdleTicks && !pl.sleepWatchdog(ctx, slots) {
			return
		}
	}
}

// runSlotsNow is the workers' slots, as the watchdog reads them.
func (pl *pool) runSlotsNow() []*runSlot {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.runSlots
}

// sleepWatchdog waits until a worker starts a run or a claim holds one; false when ctx ended
// first. One that did before the watchdog said it sleeps is seen when it looks again.
func (pl *pool) sleepWatchdog(ctx context.Context, slots []*runSlot) bool {
	pl.watchAsleep.Store(true)
	defer pl.watchAsleep.Store(false)
	for _, s := range slots {
		if s.run.Load() != nil {
			return true
		}
	}
	pl.mu.Lock()
	held := len(pl.heldRuns)
	pl.mu.Unlock()
	if held > 0 {
		return true
	}
	select {
	case <-ctx.Done():
		return false
	case <-pl.watchWake:
		return true
	}
}

// wakeWatchdog wakes the watchdog when it sleeps: a worker starts a run, or a claim holds one.
func (pl *pool) wakeWatchdog() {
	if pl.watchWake != nil && pl.watchAsleep.Load() {
		select {
		case pl.watchWake <- struct{}{}:
		default:
		}
	}
}
