package runtime

import (
	"context"
	"sync"
	"sync/atomic"
)

// maxRun bounds the messages of one lane a worker runs in a row before it puts the lane's
// next message in the ready queue, behind the other lanes' (see work).
const maxRun = 64

// minLaneSweep is the number of lanes below which idle lanes are left in the pool's map.
const minLaneSweep = 1024

// chunk is messages submitted together and ready to run: workers take them in order, one
// at a time, by counting next up; none is taken twice and no lock is needed.
type chunk struct {
	jobs []*job
	next atomic.Int32 // index of the next message to take (past the end once all are taken)
	run  *partRun     // instead of jobs: a partition's run (runs.go), taken whole under the pool's lock
}

// take returns the chunk's next message, nil when none is left (or c is nil).
func (c *chunk) take() *job {
	if c == nil {
		return nil
	}
	if i := int(c.next.Add(1)) - 1; i < len(c.jobs) {
		j := c.jobs[i]
		return j
	}
	return nil
}

// left reports whether messages of the chunk are still to be taken; a run's chunk is left
// until the pool's lock drops it.
func (c *chunk) left() bool { return c != nil && (c.run != nil || int(c.next.Load()) < len(c.jobs)) }

// lane is the state of one lane: the count of its messages in the pool and those waiting.
// queued changes without a lock only when a message is done, so a lane with no message
// waiting costs no lock to finish. A message is counted and put in waiting under the lane's
// own lock, and taken out under it by the worker done with the one before: the pool's lock,
// which every consumer and worker shares, is not taken for it. (Measured in Key ordering
// with 100 keys a partition: 4 in 10 messages wait in their lane, and taking the pool's lock
// for each cost 1.07x the messages per second and 1.08x the CPU per message.)
type lane struct {
	mu      sync.Mutex
	queued  atomic.Int32 // messages of the lane held by the pool: the one ready or running, and those waiting
	waiting fifo[*job]   // under mu
}

// work is one worker: it takes the next ready message, runs it, and then the lane's next
// one while one waits (at most maxRun in a row), until ctx ends; or it takes a ready run and
// handles its batches (runs.go). slot tells the runs' watchdog which run the worker is in.
func (pl *pool) work(ctx context.Context, slot *runSlot, fins *completions, process func(*job, *completions)) {
	var (
		c   *chunk // the chunk this worker last took a message from
		j   *job
		run int // messages of j's lane run in a row
	)
	defer fins.record()
	for {
		if j == nil {
			if c, j = pl.nextJob(ctx, c, slot, fins, process); j == nil {
				return
			}
			run = 0
			pl.wakeIfLeft(c)
		}
		if ctx.Err() != nil {
			return
		}
		fins.recordBefore(j)
		ln, size, r := j.lane, j.size, j.spilledRun() // j may be reused once process finished it
		process(j, fins)
		if j = pl.done(ln, size); r != nil {
			pl.laneDone(r)
		}
		if j != nil {
			if run++; run >= maxRun {
				pl.pushReady(j)
				j = nil
			}
		}
	}
}

// nextJob returns the worker's next message with its chunk: chunk c's next, else the next
// ready one. A ready run the worker takes on the way it handles first (runPartition), and
// when the run hands it a lane's next message, that one is next. nil once ctx ended or the
// pool stopped.
func (pl *pool) nextJob(ctx context.Context, c *chunk, slot *runSlot, fins *completions, process func(*job, *completions)) (*chunk, *job) {
	if j := c.take(); j != nil {
		return c, j
	}
	for {
		fins.record() // before waiting for work
		c, j, r := pl.next()
		if r == nil {
			return c, j
		}
		pl.wakeIfReady()
		if j := pl.runPartition(ctx, r, slot, fins, process); j != nil {
			return nil, j
		}
		if ctx.Err() != nil {
			return nil, nil
		}
	}
}

// next waits for a ready message and returns it with its chunk, or a ready run; nil once
// the pool stopped.
func (pl *pool) next() (*chunk, *job, *partRun) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for {
		if pl.stopped {
			return nil, nil, nil
		}
		if c, j, r := pl.takeLocked(); j != nil || r != nil {
			return c, j, r
		}
		if pl.spaceWait.Load() > 0 && pl.held.Load() < pl.capacity {
			pl.spaceFreed.Broadcast() // nothing to run: the consumers may refill now
		}
		pl.idleChangingLocked()
		pl.idle.Add(1)
		pl.workReady.Wait()
		pl.idleChangingLocked()
		pl.idle.Add(-1)
		if pl.waking.Load() > 0 {
			pl.waking.Add(-1)
		}
	}
}

// takeLocked takes the first ready message or run, dropping the chunks all taken; pl.mu is
// held.
func (pl *pool) takeLocked() (*chunk, *job, *partRun) {
	for pl.ready.len() > 0 {
		c := pl.ready.peek()
		if c.run == nil {
			if j := c.take(); j != nil {
				return c, j, nil
			}
		}
		pl.ready.pop()
		pl.chunks.Add(-1)
		if c.run != nil {
			return nil, nil, c.run
		}
	}
	return nil, nil, nil
}

// wakeIfLeft wakes an idle worker when ready messages are left after this worker took one
// and no worker is already on its way to them; that one does the same when it takes one.
// So before a worker starts a message, the messages left have a worker awake for them, and
// a hanging message holds up only its lane. The checks before the lock are cheap and may
// err only towards taking it.
func (pl *pool) wakeIfLeft(c *chunk) {
	if pl.idle.Load() == 0 || pl.waking.Load() > 0 || (!c.left() && pl.chunks.Load() <= 1) {
		return
	}
	pl.mu.Lock()
	pl.wakeLocked()
	pl.mu.Unlock()
}

// wakeIfReady wakes an idle worker when anything is ready and no worker is already on its
// way to it: a worker starting a run calls it, as one starting a message calls wakeIfLeft.
func (pl *pool) wakeIfReady() {
	if pl.idle.Load() == 0 || pl.waking.Load() > 0 || pl.chunks.Load() == 0 {
		return
	}
	pl.mu.Lock()
	pl.wakeLocked()
	pl.mu.Unlock()
}

// wakeLocked wakes an idle worker when messages are ready and no worker is already on its
// way to them; pl.mu is held.
func (pl *pool) wakeLocked() {
	if pl.idle.Load() <= pl.waking.Load() || pl.waking.Load() > 0 {
		return
	}
	for pl.ready.len() > 0 && !pl.ready.peek().left() {
		pl.ready.pop()
		pl.chunks.Add(-1)
	}
	if pl.ready.len() > 0 {
		pl.waking.Add(1)
		pl.workReady.Signal()
	}
}

// pushReady puts one message at the end of the ready queue.
func (pl *pool) pushReady(j *job) {
	pl.mu.Lock()
	pl.pushReadyLocked(&chunk{jobs: []*job{j}})
	pl.wakeLocked()
	pl.mu.Unlock()
}

// pushReadyLocked puts a chunk at the end of the ready queue; pl.mu is held.
func (pl *pool) pushReadyLocked(c *chunk) {
	pl.ready.push(c)
	pl.chunks.Add(1)
}

// done gives back the slot and bytes of a message a worker is done with, and returns its
// lane's next message, if one waits: the caller runs it next.
func (pl *pool) done(ln *lane, size int64) *job {
	pl.doneOne(size)
	return pl.laneNext(ln)
}

// laneNext gives up a lane whose message is done and returns its next message, if one waits.
func (pl *pool) laneNext(ln *lane) *job {
	if ln == nil || ln.queued.Add(-1) == 0 {
		return nil
	}
	// A message of the lane was counted and put in waiting under the lane's lock: it is
	// there once the lock is taken.
	ln.mu.Lock()
	next := ln.waiting.pop()
	ln.mu.Unlock()
	if pt := next.part; pt != nil {
		pt.leftLanes(1)
	}
	return next
}

// enterLanesLocked puts each message in its lane (j.key names it): a message whose lane
// has no message in the pool is ready, the others wait in their lane. It returns the ready
// ones, in order, in js's array. pl.mu is held.
func (pl *pool) enterLanesLocked(js []*job) []*job {
	ready := js[:0]
	for _, j := range js {
		ln := pl.lanes[j.key]
		if ln == nil {
			ln = &lane{}
			pl.lanes[j.key] = ln
		}
		j.lane = ln
		if ln.enter(j) {
			ready = append(ready, j)
		}
	}
	if len(pl.lanes) >= pl.sweepAt {
		pl.sweepLanesLocked()
	}
	return ready
}

// occupyLaneLocked counts a message in the lane named key, the one a spilled run's worker is
// in (runs.go), so that the lane's next messages wait for it; pl.mu is held.
func (pl *pool) occupyLaneLocked(key laneKey) *lane {
	ln := pl.lanes[key]
	if ln == nil {
		ln = &lane{}
		pl.lanes[key] = ln
	}
	ln.queued.Add(1)
	return ln
}

// enter counts j in the lane and puts it in waiting when the lane already has a message in
// the pool; it reports whether j is the lane's only one, ready to run.
func (ln *lane) enter(j *job) bool {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if ln.queued.Add(1) == 1 {
		return true
	}
	ln.waiting.push(j)
	if pt := j.part; pt != nil {
		pt.waiting.Add(1)
	}
	return false
}

// sweepLanesLocked forgets the lanes with no message in the pool, so the map grows with
// the lanes in use, not with every key ever seen. A lane's count reaches 0 only when its
// last message is done, and the worker does not touch the lane after that. pl.mu is held.
func (pl *pool) sweepLanesLocked() {
	for k, ln := range pl.lanes {
		if ln.queued.Load() == 0 {
			delete(pl.lanes, k)
		}
	}
	pl.sweepAt = max(minLaneSweep, 2*len(pl.lanes))
}

// fifo is a queue that reuses its array.
type fifo[T any] struct {
	items []T
	head  int // items[:head] were popped
}

func (q *fifo[T]) len() int { return len(q.items) - q.head }
func (q *fifo[T]) peek() T  { return q.items[q.head] }

func (q *fifo[T]) push(v T) {
	if len(q.items) == cap(q.items) && q.head > 0 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, v)
}

func (q *fifo[T]) pop() T {
	var zero T
	v := q.items[q.head]
	q.items[q.head] = zero
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return v
}
