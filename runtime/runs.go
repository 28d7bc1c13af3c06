package runtime

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// Runs: how a handler pipeline in Partition or Key ordering hands a partition's messages to
// the workers.
//
// A claim hands the messages it admitted together to the pool as one batch of its
// partition's run. A worker takes the run and handles its batches in order, one message at a
// time; no other worker takes the run meanwhile. A partition's messages thus need no lane, no
// job until a worker starts them, and no lock of the pool each: the claim and the worker
// take the pool's lock at most once a batch. (Measured in
// docs/benchmarks.md, "Runs of a partition's batches": lanes for every message cost more than
// the handler's work for a fast handler.) A run keeps Partition ordering's promise as a lane
// did.
//
// Key ordering promises more: a slow or failing message holds up only its key. In a run it
// holds up the run, so a watchdog (watchRuns) spills a run whose worker finished no message
// for runStallTicks ticks while messages wait behind it: the messages not started go to the
// lanes (handoff.go), and the message in flight keeps its key's lane until its worker is done
// with it (handover; runwatch.go). While any of the partition's messages is in the lanes, the batches its
// claim submits wait in the run (held): they may not overtake the lanes, and the run starts
// again once the lanes are empty. The watchdog moves a held run's batches to the lanes too
// when the lanes do not empty within runStallTicks ticks (a key still stalls there), so a
// stalled key holds up only itself, and a run that spilled by chance (its worker kept off the
// CPU for a few milliseconds) is back in a run within milliseconds, even while its partition
// is consumed at full speed. A slow handler thus runs its keys in parallel within a few
// milliseconds; a fast one stays in runs.

// partRun is one partition's run: its batches admitted and not started, in order, and the
// batch its worker is taking messages from.
type partRun struct {
	pt *partition

	mu        sync.Mutex
	queue     fifo[*runBatch] // admitted, not started
	cur       *runBatch       // the batch the run's worker takes messages from
	scheduled bool            // the run is in the ready queue or on a worker
	// spilled is set when the run's messages went to the lanes (Key ordering), until none
	// of them is left there (inLanes): meanwhile the run's batches are held, not run.
	spilled bool
	// watched: the watchdog looks at the run while it is held; heldTicks counts its looks
	// since it last moved the run's batches to the lanes. direct is set once it moved them:
	// a key stalls in the lanes, and until they are empty the claim submits to them directly,
	// so that the partition's other keys are not held up a few milliseconds a batch.
	watched   bool
	heldTicks int
	direct    bool
	// handover is the lane of the message the run's worker was in when the run spilled:
	// the worker gives the lane up once it is done with the message.
	handover *lane

	// inLanes counts the partition's messages in the lanes since the run spilled, the one in
	// flight during the spill included; workers count them down (laneJobDone).
	inLanes atomic.Int32
	// progress counts the messages the run's workers finished: the watchdog spills a run
	// whose count stays put.
	progress atomic.Uint32
}

// runBatch is messages of one partition admitted together; next is the index of the next
// one to start, taken atomically by the run's worker (and, when the run spills, set past the
// end by the watchdog, which takes the rest).
type runBatch struct {
	ms    []*sarama.ConsumerMessage
	sizes []int64
	start time.Time
	next  atomic.Int32
}

// take returns the index of the batch's next message, or false when none is left.
func (b *runBatch) take() (int, bool) {
	i := int(b.next.Add(1)) - 1
	return i, i < len(b.ms)
}

// runSlot is what the watchdog knows of one worker: the run it is in, if any.
type runSlot struct{ run atomic.Pointer[partRun] }

// submitRun hands messages of pt admitted together (each holding a slot and its size of the
// pool's bytes) to the partition's run, held while the run's earlier messages are in the
// lanes. Only pt's claim calls it. ms and sizes are the pool's from then on.
func (pl *pool) submitRun(pt *partition, ms []*sarama.ConsumerMessage, sizes []int64, now time.Time) {
	r := pt.run
	if r == nil {
		r = &partRun{pt: pt}
		pt.run = r
	}
	r.mu.Lock()
	if r.spilled && r.inLanes.Load() == 0 {
		r.spilled, r.direct = false, false // the lanes emptied; laneDone has not looked yet
	}
	if r.direct {
		pl.toLanesLocked(r, newJobs(pt, ms, sizes, now), nil)
		r.mu.Unlock()
		return
	}
	detachAll(ms, sizes)
	r.queue.push(&runBatch{ms: ms, sizes: sizes, start: now})
	pt.waiting.Add(int32(len(ms)))
	schedule := !r.spilled && !r.scheduled
	if schedule {
		r.scheduled = true
	}
	watch := r.spilled && !r.watched
	if watch {
		r.watched, r.heldTicks = true, 0
	}
	r.mu.Unlock()
	if schedule {
		pl.pushRun(r)
	}
	if watch {
		pl.watchHeld(r)
	}
}

// laneDone counts down a message of r's partition done in the lanes, and starts the run
// again once none is left there and batches were held.
func (pl *pool) laneDone(r *partRun) {
	if r.inLanes.Add(-1) != 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.spilled || r.inLanes.Load() != 0 {
		return
	}
	r.spilled, r.direct = false, false
	if r.queue.len() > 0 && !r.scheduled {
		r.scheduled = true
		pl.pushRun(r)
	}
}

// pushRun puts a run at the end of the ready queue.
func (pl *pool) pushRun(r *partRun) {
	pl.mu.Lock()
	pl.pushReadyLocked(&chunk{run: r})
	pl.wakeLocked()
	pl.mu.Unlock()
}

// runPartition is a worker in run r, from the ready queue: it handles r's batches in order
// until none is left, other work waits after a batch, or ctx ends. When r spilled while the
// worker was in a message, it gives up the message's lane once done with it and returns the
// lane's next message, which the caller runs next (as a lane's worker does).
func (pl *pool) runPartition(ctx context.Context, r *partRun, slot *runSlot, fins *completions, process func(*job, *completions)) *job {
	slot.run.Store(r)
	defer slot.run.Store(nil)
	pl.wakeWatchdog()
	for started := 0; ; started++ {
		b, handover := pl.nextBatch(r, started)
		if handover != nil {
			return pl.laneJobDone(r, handover)
		}
		if b == nil {
			return nil
		}
		for i, ok := b.take(); ok; i, ok = b.take() {
			if ctx.Err() != nil {
				return nil
			}
			j := jobPool.Get().(*job)
			j.msg, j.part, j.start, j.size, j.offset = b.ms[i], r.pt, b.start, b.sizes[i], b.ms[i].Offset
			fins.recordBefore(j)
			size := j.size // j may be reused once process finished it
			process(j, fins)
			pl.doneOne(size)
			r.progress.Add(1)
		}
	}
}

// nextBatch ends the worker's batch in r and returns r's next one, nil when the worker leaves
// the run: when none is left, or when started batches ran and other work is ready (the run
// goes behind it); or the lane to hand over when r spilled while the worker was in a message.
func (pl *pool) nextBatch(r *partRun, started int) (*runBatch, *lane) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur = nil
	if ln := r.handover; ln != nil {
		r.handover, r.scheduled = nil, false
		return nil, ln
	}
	if r.queue.len() == 0 || r.spilled {
		r.scheduled = false // a held run starts again once the lanes are empty (laneDone)
		return nil, nil
	}
	if started > 0 && pl.chunks.Load() > 0 {
		pl.pushRun(r)
		return nil, nil
	}
	b := r.queue.pop()
	r.cur = b
	r.pt.leftLanes(int32(len(b.ms)))
	return b, nil
}

// laneJobDone is the end of the message a spilled run's worker was in when it spilled: it
// gives up the message's lane ln and returns the lane's next message, if one waits. The
// message's slot was given back.
func (pl *pool) laneJobDone(r *partRun, ln *lane) *job {
	next := pl.laneNext(ln)
	pl.laneDone(r)
	return next
}

// leftLanes counts n of the partition's messages taken out of the waiting to run, and wakes
// the claim holding the partition back once few enough wait (holdback.go).
func (pt *partition) leftLanes(n int32) {
	if pt.waiting.Add(-n) <= pt.resumeAt.Load() {
		select {
		case pt.room <- struct{}{}:
		default:
		}
	}
}
