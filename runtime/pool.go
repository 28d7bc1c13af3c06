package runtime

import (
	"context"
	"hash/maphash"
	"sync"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// pool is the bounded buffer and the workers behind it.
//
// A message holds one of the pool's slots (buffer + workers of them) and its size in bytes
// from the moment it is admitted until a worker is done with it, so the pool never holds
// more messages, nor more bytes, than its configuration allows, whatever the lag. A message
// larger than the pool's bytes is admitted alone, once the pool holds no bytes.
//
// Ordering uses lanes. In Partition mode a lane is a partition, in Key mode a key of a
// partition; Unordered has no lanes. A message whose lane is busy waits in the lane, not in
// the ready queue; when a worker is done with a lane's message, the lane's next one becomes
// ready, so a lane never runs on two workers at once and keeps its order.
//
// The hand-off is cheap per message: a consumer takes slots for the messages it has at hand
// and submits them under one lock; a worker gives back the slot and lane of the message it
// finished and takes the next ready one under one lock, and waits on a condition variable
// only when nothing is ready. A worker takes one message at a time, so a message that hangs
// holds up its own lane only.
type pool struct {
	ordering kpipev1.Ordering
	capacity int   // slots: buffer + workers
	capBytes int64 // bytes of the messages held: the pool's share of the memory budget

	mu         sync.Mutex
	held       int                // slots taken: messages held by the pool
	heldBytes  int64              // bytes taken: of the messages held and the room consumers reserved
	tickets    uint64             // given to consumers that wait, in order
	serving    uint64             // the ticket whose consumer may take space next
	gaveUp     map[uint64]bool    // tickets of consumers that stopped waiting
	ready      []*job             // messages a worker may start, at most one per lane; ready[head:] are waiting
	head       int                // ready[:head] were taken
	lanes      map[laneKey][]*job // busy lanes and the messages waiting in them
	seed       maphash.Seed       // of the key hashes in laneKey
	idle       int                // workers waiting for work
	waking     int                // of them, signalled and not yet running
	spaceWait  int                // consumers waiting for a slot
	stopped    bool               // the workers' context ended
	workReady  sync.Cond          // signalled when a message becomes ready or the workers stop
	spaceFreed sync.Cond          // broadcast when slots are given back or a waiting consumer's ctx ends
	wg         sync.WaitGroup
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
		capacity: buffer + workers,
		capBytes: capBytes,
		lanes:    map[laneKey][]*job{},
		gaveUp:   map[uint64]bool{},
		seed:     maphash.MakeSeed(),
	}
	pl.workReady.L = &pl.mu
	pl.spaceFreed.L = &pl.mu
	return pl
}

// start runs n workers until ctx ends. process must not block past ctx.
func (pl *pool) start(ctx context.Context, n int, process func(*job)) {
	context.AfterFunc(ctx, func() {
		pl.mu.Lock()
		pl.stopped = true
		pl.mu.Unlock()
		pl.workReady.Broadcast()
	})
	for range n {
		pl.wg.Go(func() { pl.work(ctx, process) })
	}
}

// wait waits for the workers, which stop when the context given to start ends.
func (pl *pool) wait() { pl.wg.Wait() }

func (pl *pool) work(ctx context.Context, process func(*job)) {
	var j *job // the message this worker was last done with
	pl.mu.Lock()
	for {
		if j != nil {
			pl.finishLocked(j)
		}
		for pl.head == len(pl.ready) && !pl.stopped {
			pl.idle++
			pl.workReady.Wait()
			pl.idle--
			if pl.waking > 0 {
				pl.waking--
			}
		}
		if pl.stopped {
			pl.mu.Unlock()
			return
		}
		j = pl.ready[pl.head]
		pl.take(1)
		pl.wakeLocked()
		pl.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		process(j)
		pl.mu.Lock()
	}
}

// wakeLocked wakes an idle worker when messages are ready and no worker is already on its
// way to them; that one wakes the next if messages are still left when it took one. pl.mu
// is held.
func (pl *pool) wakeLocked() {
	if pl.head < len(pl.ready) && pl.idle > pl.waking && pl.waking == 0 {
		pl.waking++
		pl.workReady.Signal()
	}
}

// take removes the first n ready messages; pl.mu is held.
func (pl *pool) take(n int) {
	clear(pl.ready[pl.head : pl.head+n])
	pl.head += n
	if pl.head == len(pl.ready) {
		pl.ready, pl.head = pl.ready[:0], 0
	}
}

// finishLocked gives back the slot of a message a worker is done with and makes the next
// message of its lane ready; pl.mu is held.
func (pl *pool) finishLocked(j *job) {
	pl.held--
	pl.heldBytes -= j.size
	if pl.spaceWait > 0 {
		pl.spaceFreed.Broadcast()
	}
	if pl.ordering == kpipev1.OrderingUnordered {
		return
	}
	q := pl.lanes[j.lane]
	if len(q) == 0 {
		delete(pl.lanes, j.lane)
		return
	}
	next := q[0]
	q[0] = nil
	pl.lanes[j.lane] = q[1:]
	pl.pushReadyLocked(next)
}

// pushReadyLocked makes j ready; pl.mu is held. The queue reuses its array: it never holds
// more than the pool's slots.
func (pl *pool) pushReadyLocked(j *job) {
	if len(pl.ready) == cap(pl.ready) && pl.head > 0 {
		n := copy(pl.ready, pl.ready[pl.head:])
		clear(pl.ready[n:])
		pl.ready, pl.head = pl.ready[:n], 0
	}
	pl.ready = append(pl.ready, j)
}

// acquireUpTo takes between 1 and n slots, as many as are free, and room for first bytes
// and for as many more as are free (up to an eighth of the pool's bytes), waiting when
// there is no slot or no room for first; it returns the slots and the bytes it took, 0
// slots when ctx ended first. Consumers waiting for bytes are served in the order they came,
// before any other, so a large message is not overtaken for ever by small ones; waiting for
// a slot alone needs no order (any free slot will do).
func (pl *pool) acquireUpTo(ctx context.Context, n int, first int64) (int, int64) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if !pl.mayTakeLocked(first) && !pl.waitLocked(ctx, first) {
		return 0, 0
	}
	n = min(n, pl.capacity-pl.held)
	room := max(first, min(pl.capBytes-pl.heldBytes, pl.capBytes/8))
	pl.held += n
	pl.heldBytes += room
	return n, room
}

// mayTakeLocked reports whether a consumer that does not wait in turn may take a slot and
// bytes now; pl.mu is held.
func (pl *pool) mayTakeLocked(bytes int64) bool {
	return pl.tickets == pl.serving && pl.fitsLocked(bytes)
}

func (pl *pool) fitsLocked(bytes int64) bool {
	return pl.held < pl.capacity && (pl.heldBytes == 0 || pl.heldBytes+bytes <= pl.capBytes)
}

// waitLocked waits for a slot, then, when the bytes do not fit or others wait for bytes,
// for its turn and room; false when ctx ended first. pl.mu is held.
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
	pl.spaceWait++
	defer func() { pl.spaceWait-- }()
	for ctx.Err() == nil && pl.tickets == pl.serving && pl.held >= pl.capacity {
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

// empty reports whether no slot is taken: no message is waiting in the pool or being
// processed, and no consumer is about to submit one.
func (pl *pool) empty() bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.held == 0
}

// release gives back n slots and bytes taken by acquire and not used by messages.
func (pl *pool) release(n int, bytes int64) {
	if n <= 0 && bytes <= 0 {
		return
	}
	pl.mu.Lock()
	pl.held -= n
	pl.heldBytes -= bytes
	if pl.spaceWait > 0 {
		pl.spaceFreed.Broadcast()
	}
	pl.mu.Unlock()
}

// submitAll hands messages (each holding a slot) to the pool, in their order. Only the
// consumer of a partition submits that partition's messages.
func (pl *pool) submitAll(js []*job) {
	if pl.ordering != kpipev1.OrderingUnordered {
		for _, j := range js {
			j.lane = pl.laneOf(j)
		}
	}
	pl.mu.Lock()
	for _, j := range js {
		if pl.ordering != kpipev1.OrderingUnordered {
			if q, busy := pl.lanes[j.lane]; busy {
				pl.lanes[j.lane] = append(q, j)
				continue
			}
			pl.lanes[j.lane] = nil
		}
		pl.pushReadyLocked(j)
	}
	pl.wakeLocked()
	pl.mu.Unlock()
}

func (pl *pool) laneOf(j *job) laneKey {
	var h maphash.Hash
	h.SetSeed(pl.seed)
	h.WriteString(j.msg.Topic)
	if pl.ordering == kpipev1.OrderingKey {
		h.WriteByte(0)
		h.Write(j.msg.Key)
	}
	return laneKey{partition: j.msg.Partition, hash: h.Sum64()}
}
