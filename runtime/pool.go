package runtime

import (
	"context"
	"sync"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// pool is the bounded buffer and the workers behind it.
//
// A message holds one of the pool's slots (buffer + workers of them) from the moment it is
// consumed until a worker is done with it, so the pool never holds more messages than its
// configuration allows, whatever the lag.
//
// Ordering uses lanes. In Partition mode a lane is a partition, in Key mode a key of a
// partition; Unordered has no lanes. A message whose lane is busy waits in the lane, not in
// the buffer; the worker that finishes a lane's message goes on with the lane's next one, so
// a lane never runs on two workers at once and keeps its order.
type pool struct {
	ordering kpipev1.Ordering
	ready    chan *job     // the bounded buffer: messages a worker may start
	slots    chan struct{} // one per message held by the pool
	mu       sync.Mutex
	lanes    map[laneKey][]*job // busy lanes and the messages waiting in them
	wg       sync.WaitGroup
}

type laneKey struct {
	topic     string
	partition int32
	key       string
}

func newPool(ordering kpipev1.Ordering, buffer, workers int) *pool {
	return &pool{
		ordering: ordering,
		ready:    make(chan *job, buffer),
		slots:    make(chan struct{}, buffer+workers),
		lanes:    map[laneKey][]*job{},
	}
}

// start runs n workers until ctx ends. process must not block past ctx.
func (pl *pool) start(ctx context.Context, n int, process func(*job)) {
	for range n {
		pl.wg.Go(func() { pl.work(ctx, process) })
	}
}

// wait waits for the workers, which stop when the context given to start ends.
func (pl *pool) wait() { pl.wg.Wait() }

func (pl *pool) work(ctx context.Context, process func(*job)) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-pl.ready:
			for j != nil && ctx.Err() == nil {
				process(j)
				<-pl.slots
				j = pl.next(j)
			}
		}
	}
}

// acquire takes a slot for a message about to be consumed; false when ctx ended first.
func (pl *pool) acquire(ctx context.Context) bool {
	select {
	case pl.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// release gives back a slot taken by acquire for a message that never reached the pool.
func (pl *pool) release() { <-pl.slots }

// submit hands a message (holding a slot) to the pool; false when ctx ended first, and then
// the message is not in the pool.
func (pl *pool) submit(ctx context.Context, j *job) bool {
	if pl.ordering != kpipev1.OrderingUnordered {
		k := pl.laneOf(j)
		pl.mu.Lock()
		if q, busy := pl.lanes[k]; busy {
			pl.lanes[k] = append(q, j)
			pl.mu.Unlock()
			return true
		}
		pl.lanes[k] = nil
		pl.mu.Unlock()
		// Only the consumer of j's partition submits to j's lane, so nothing can have
		// queued behind j if the send below fails.
		select {
		case pl.ready <- j:
			return true
		case <-ctx.Done():
			pl.mu.Lock()
			delete(pl.lanes, k)
			pl.mu.Unlock()
			return false
		}
	}
	select {
	case pl.ready <- j:
		return true
	case <-ctx.Done():
		return false
	}
}

// next returns the message waiting behind j in j's lane, or nil and frees the lane.
func (pl *pool) next(j *job) *job {
	if pl.ordering == kpipev1.OrderingUnordered {
		return nil
	}
	k := pl.laneOf(j)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	q := pl.lanes[k]
	if len(q) == 0 {
		delete(pl.lanes, k)
		return nil
	}
	pl.lanes[k] = q[1:]
	return q[0]
}

func (pl *pool) laneOf(j *job) laneKey {
	k := laneKey{topic: j.msg.Topic, partition: j.msg.Partition}
	if pl.ordering == kpipev1.OrderingKey {
		k.key = string(j.msg.Key)
	}
	return k
}
