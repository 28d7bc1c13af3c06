package runtime

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/IBM/sarama"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// pool is the bounded buffer and the workers behind it.
//
// A message holds one of the pool's slots (buffer + workers of them) and its size in bytes
// from the moment it is admitted until a worker is done with it, so the pool never holds
// more messages, nor more bytes, than its configuration allows, whatever the lag. A message
// larger than the pool's bytes is admitted alone, once the pool holds no bytes.
//
// A handler's messages in Partition and Key ordering go to their partition's run (runs.go),
// which one worker at a time handles in order; a run that stalls in Key ordering spills into
// lanes. Forwards and Unordered go to lanes directly.
//
// Ordering uses lanes. In Partition mode a lane is a partition, in Key mode a key of a
// partition; Unordered has no lanes. A message whose lane is busy waits in the lane, not in
// the ready queue; the worker done with a lane's message runs the lane's next one itself,
// so a lane never runs on two workers at once and keeps its order.
//
// The hand-off costs no lock per message (see handoff.go): a consumer submits the messages
// it admitted together as one chunk of the ready queue, and workers take the chunk's
// messages one at a time with an atomic counter; a worker takes the pool's lock only when
// its chunk runs out and to wake or park, and a lane's own lock when the lane it finished
// has a message waiting.
// Every worker takes one message at a time and, before it starts one, wakes an idle worker
// if ready messages are left, so a message that hangs holds up its own lane only.
type pool struct {
	ordering kpipev1.Ordering
	capacity int64        // slots: buffer + workers
	capBytes atomic.Int64 // bytes of the messages held: the pool's share of the memory budget (see setCapBytes)
	refill   int64        // free slots that wake the consumers waiting for space (see doneOne)

	// Slots and bytes are taken under mu (acquireUpTo) and given back without it (done).
	held      atomic.Int64 // slots taken: messages held by the pool
	heldBytes atomic.Int64 // bytes taken: of the messages held and the room consumers reserved
	spaceWait atomic.Int32 // consumers waiting for space: done wakes them
	idle      atomic.Int32 // workers waiting for work (changed under mu)
	waking    atomic.Int32 // of them, signalled and not yet running (changed under mu)

	mu        sync.Mutex
	tickets   uint64            // given to consumers that wait, in order
	serving   uint64            // the ticket whose consumer may take space next
	gaveUp    map[uint64]bool   // tickets of consumers that stopped waiting
	ready     fifo[*chunk]      // ready messages, in order; chunks all taken are dropped lazily
	chunks    atomic.Int32      // chunks in ready (changed under mu)
	lanes     map[laneKey]*lane // lanes that had messages; idle ones are swept now and then
	sweepAt   int               // len(lanes) at which idle lanes are swept
	seed      maphash.Seed      // of the key hashes in laneKey
	stopped   bool              // the workers' context ended
	workers   int               // started by start
	finishing []*completions    // each worker's finished messages not recorded yet (completions.go); only appended to
	occupancy occupancy         // idle worker time, for the telemetry's busy share (telemetry.go)
	// runs is set when a partition's messages go to its run (runs.go), not to lanes: a
	// handler in Partition or Key ordering (useRuns). runSlots are the workers' runs and
	// heldRuns the runs held, for the watchdog of Key ordering, which sleeps on watchWake
	// while no worker is in a run and none is held.
	runs        bool
	runSlots    []*runSlot
	heldRuns    []*partRun // runs held while their messages are in the lanes (runs.go)
	watchAsleep atomic.Bool
	watchWake   chan struct{}
	workReady   sync.Cond // signalled when a message becomes ready or the workers stop
	spaceFreed  sync.Cond // broadcast when slots are given back or a waiting consumer's ctx ends
	wg          sync.WaitGroup
}

// laneKey names a lane: a partition and, in Key mode, a hash of the message's topic and
// key (in Partition mode, of the topic). A lane name then costs no allocation and hashes
// fast; two lanes whose hashes collide (about one pair in 2^64) merely become one lane, which
// keeps the order of both.
type laneKey struct {
	partition int32
	hash      uint64
}

func newPool(ordering kpipev1.Ordering, buffer, workers int, capBytes int64) *pool {
	pl := &pool{
		ordering: ordering,
		capacity: int64(buffer + workers),
		refill:   int64(max(1, (buffer+workers)/2)),
		lanes:    map[laneKey]*lane{},
		sweepAt:  minLaneSweep,
		gaveUp:   map[uint64]bool{},
		seed:     maphash.MakeSeed(),
	}
	pl.capBytes.Store(capBytes)
	pl.workReady.L = &pl.mu
	pl.spaceFreed.L = &pl.mu
	return pl
}

// useRuns makes the claims hand a partition's messages to its run (runs.go) instead of to
// lanes: for a handler, whose messages the workers finish themselves, in Partition or Key
// ordering. Call it before start.
func (pl *pool) useRuns() {
	if pl.ordering == kpipev1.OrderingUnordered {
		return
	}
	pl.runs = true
	if pl.ordering == kpipev1.OrderingKey {
		pl.watchWake = make(chan struct{}, 1)
	}
}

// start runs n workers until ctx ends. process must not block past ctx.
func (pl *pool) start(ctx context.Context, n int, process func(*job, *completions)) {
	context.AfterFunc(ctx, func() {
		pl.mu.Lock()
		pl.stopped = true
		pl.mu.Unlock()
		pl.workReady.Broadcast()
	})
	fins := make([]*completions, n)
	slots := make([]*runSlot, n)
	for i := range fins {
		fins[i], slots[i] = new(completions), new(runSlot)
	}
	pl.mu.Lock()
	watch := pl.watchWake != nil && len(pl.runSlots) == 0
	pl.workers += n
	pl.finishing = append(pl.finishing, fins...)
	pl.runSlots = append(slices.Clip(pl.runSlots), slots...)
	pl.mu.Unlock()
	for i, c := range fins {
		pl.wg.Go(func() { pl.work(ctx, slots[i], c, process) })
	}
	if watch {
		pl.wg.Go(func() { pl.watchRuns(ctx) })
	}
}

// recordFinished records the messages the workers finished and still hold (completions.go).
// The claims call it before every commit and when a partition is released: a worker whose
// handler hangs cannot record the messages of its partition it finished before.
func (pl *pool) recordFinished() {
	pl.mu.Lock()
	fins := pl.finishing
	pl.mu.Unlock()
	for _, c := range fins {
		c.record()
	}
}

// wait waits for the workers, which stop when the context given to start ends.
func (pl *pool) wait() { pl.wg.Wait() }

// acquireUpTo takes between 1 and n slots, as many as are free, and room for first bytes
// and for as many more as are free (up to an eighth of the pool's bytes), waiting when
// there is no slot or no room for first; it returns the slots and the bytes it took, 0
// slots when ctx ended first. Consumers waiting for bytes are served in the order they came,
// before any other, so a large message is not overtaken for ever by small ones; waiting for
// a slot alone needs no order (any free slot will do).
//
// Only acquireUpTo adds to held and heldBytes, under mu; done takes away without it, so
// what is read here can only be too high, never too low, and the bounds hold.
func (pl *pool) acquireUpTo(ctx context.Context, n int, first int64) (int, int64) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if !pl.mayTakeLocked(first) && !pl.waitLocked(ctx, first) {
		return 0, 0
	}
	n = min(n, int(pl.capacity-pl.held.Load()))
	capBytes := pl.capBytes.Load()
	room := max(first, min(capBytes-pl.heldBytes.Load(), capBytes/8))
	pl.held.Add(int64(n))
	pl.heldBytes.Add(room)
	return n, room
}

// mayTakeLocked reports whether a consumer that does not wait in turn may take a slot and
// bytes now; pl.mu is held.
func (pl *pool) mayTakeLocked(bytes int64) bool {
	return pl.tickets == pl.serving && pl.fitsLocked(bytes)
}

func (pl *pool) fitsLocked(bytes int64) bool {
	held := pl.heldBytes.Load()
	return pl.held.Load() < pl.capacity && (held == 0 || held+bytes <= pl.capBytes.Load())
}

// waitLocked waits for a slot, then, when the bytes do not fit or others wait for bytes,
// for its turn and room; false when ctx ended first. pl.mu is held.
//
// spaceWait is raised before the slots are looked at, and done gives back before it looks
// at spaceWait, so a consumer that finds no space is always woken by the next done.
func (pl *pool) waitLocked(ctx context.Context, bytes int64) bool {
	if ctx.Err() != nil {
		return false
	}
	stop := context.AfterFunc(ctx, func() {
		pl.mu.Lock()
		pl.spaceFreed.Broadcast()
		pl.mu.Unlock()
	})
	defer stop()
	pl.spaceWait.Add(1)
	defer pl.spaceWait.Add(-1)
	for ctx.Err() == nil && pl.tickets == pl.serving && pl.held.Load() >= pl.capacity {
		pl.spaceFreed.Wait()
	}
	if ctx.Err() != nil {
		return false
	}
	if pl.mayTakeLocked(bytes) {
		return true
	}
	ticket := pl.tickets
	pl.tickets++
	for ctx.Err() == nil && (ticket != pl.serving || !pl.fitsLocked(bytes)) {
		pl.spaceFreed.Wait()
	}
	if ticket != pl.serving {
		pl.gaveUp[ticket] = true
		return false
	}
	pl.nextTurnLocked()
	return ctx.Err() == nil
}

// nextTurnLocked serves the next ticket whose consumer still waits; pl.mu is held.
func (pl *pool) nextTurnLocked() {
	pl.serving++
	for pl.gaveUp[pl.serving] {
		delete(pl.gaveUp, pl.serving)
		pl.serving++
	}
	pl.spaceFreed.Broadcast()
}

// setCapBytes changes the pool's bytes (the decoded fetches take part of its share,
// decoded.go): messages held above a lower bound stay until they are done, and consumers
// waiting for room are woken when it is raised.
func (pl *pool) setCapBytes(n int64) {
	if pl.capBytes.Swap(n) < n && pl.spaceWait.Load() > 0 {
		pl.wakeConsumers()
	}
}

// empty reports whether no slot is taken: no message is waiting in the pool or being
// processed, and no consumer is about to submit one.
func (pl *pool) empty() bool {
	return pl.held.Load() == 0
}

// release gives back n slots and bytes taken by acquire and not used by messages.
func (pl *pool) release(n int, bytes int64) {
	if n <= 0 && bytes <= 0 {
		return
	}
	pl.giveBack(int64(n), bytes)
}

// giveBack returns slots and bytes and wakes the consumers waiting for space, if any.
func (pl *pool) giveBack(n, bytes int64) {
	pl.held.Add(-n)
	pl.heldBytes.Add(-bytes)
	if pl.spaceWait.Load() > 0 {
		pl.wakeConsumers()
	}
}

// doneOne gives back the slot and bytes of a message a worker is done with. Consumers
// waiting for space are woken once a refill's worth of slots is free, so that they admit
// messages in batches rather than one at a time (each wake-up costs more than a message),
// or at once while a worker has nothing to run: the slots are then held by messages
// waiting in busy lanes (one claim took them all for its partition, in Partition
// ordering), and other partitions' messages would keep the idle workers busy. A worker
// that finds nothing ready wakes them too (see next), so fewer free slots than a refill
// never stall the pool, whatever holds the others.
func (pl *pool) doneOne(bytes int64) {
	held := pl.held.Add(-1)
	pl.heldBytes.Add(-bytes)
	if pl.spaceWait.Load() > 0 && (pl.capacity-held >= pl.refill || held == 0 || pl.idle.Load() > 0) {
		pl.wakeConsumers()
	}
}

func (pl *pool) wakeConsumers() {
	pl.mu.Lock()
	pl.spaceFreed.Broadcast()
	pl.mu.Unlock()
}

// submitAll hands messages (each holding a slot) to the pool, in their order, as one
// chunk of the ready queue. Only the consumer of a partition submits that partition's
// messages. js is the pool's from then on.
func (pl *pool) submitAll(js []*job) {
	ordered := pl.ordering != kpipev1.OrderingUnordered
	if ordered {
		pl.nameLanes(js)
	}
	pl.mu.Lock()
	ready := js
	if ordered {
		ready = pl.enterLanesLocked(js)
	}
	if len(ready) > 0 {
		pl.pushReadyLocked(&chunk{jobs: ready})
		pl.wakeLocked()
	}
	pl.mu.Unlock()
}

// nameLanes sets the lane of each job (j.key).
func (pl *pool) nameLanes(js []*job) {
	for _, j := range js {
		j.key = pl.laneOf(j.msg)
	}
}

func (pl *pool) laneOf(m *sarama.ConsumerMessage) laneKey {
	var h maphash.Hash
	h.SetSeed(pl.seed)
	h.WriteString(m.Topic)
	if pl.ordering == kpipev1.OrderingKey {
		h.WriteByte(0)
		h.Write(m.Key)
	}
	return laneKey{partition: m.Partition, hash: h.Sum64()}
}
