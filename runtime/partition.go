package runtime

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kpipe-io/kpipe/runtime/offsets"
)

// partition is one claimed partition of one consumer group session. It owns the
// partition's offset tracker and the count of its messages in flight, both under mu: the
// count is what drain waits on, and kpipe_messages_in_flight reports its changes.
type partition struct {
	topic    string
	id       int32
	sess     sarama.ConsumerGroupSession
	log      *slog.Logger
	consumed prometheus.Counter // kpipe_messages_consumed_total of the topic
	gauge    prometheus.Gauge   // kpipe_messages_in_flight, shared by every partition
	revoked  chan struct{}      // closed when the partition starts to drain
	changed  chan struct{}      // signalled whenever a message finishes while draining
	// ctx is what handlers of the partition's messages get: it ends when the runtime gives
	// up on them (drain timeout after revocation, end of the shutdown grace period).
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	tracker  *offsets.Tracker // not safe for concurrent use: only called under mu
	inFlight int
	draining bool  // drain waits for the messages in flight
	closed   bool  // released: finishing messages no longer mark offsets
	marked   int64 // last offset marked for commit, -1 if none
}

func newPartition(ctx context.Context, sess sarama.ConsumerGroupSession, topic string, id int32, log *slog.Logger, m *metrics) *partition {
	ctx, cancel := context.WithCancel(ctx)
	return &partition{
		ctx: ctx, cancel: cancel,
		topic: topic, id: id, sess: sess,
		consumed: m.consumed.WithLabelValues(topic),
		gauge:    m.inFlight,
		tracker:  offsets.New(),
		log:      log.With("topic", topic, "partition", id),
		revoked:  make(chan struct{}),
		changed:  make(chan struct{}, 1),
		marked:   -1,
	}
}

// addAll starts tracking the offsets of consumed messages and counts them in flight. A
// message delivered twice is logged and left out: ms and sizes (each message's bytes) are
// compacted in place to the messages taken, n of them; skipped is the bytes left out.
func (pt *partition) addAll(ms []*sarama.ConsumerMessage, sizes []int64) (n int, skipped int64) {
	pt.mu.Lock()
	for i, m := range ms {
		if err := pt.tracker.Add(m.Offset); err != nil {
			pt.log.Warn("skipping a message delivered twice", "err", err)
			skipped += sizes[i]
			continue
		}
		ms[n], sizes[n] = m, sizes[i]
		n++
	}
	pt.inFlight += n
	pt.mu.Unlock()
	if n > 0 {
		pt.consumed.Add(float64(n))
		pt.gauge.Add(float64(n))
	}
	return n, skipped
}

// complete records a finished message and moves the offset to mark when it advanced. The
// offset is handed to sarama (MarkOffset) only before a commit (markForCommit), not for
// every message.
func (pt *partition) complete(offset int64) {
	pt.gauge.Dec()
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.inFlight--
	pt.signal()
	if pt.closed {
		return
	}
	next, advanced, err := pt.tracker.Done(offset)
	if err != nil {
		pt.log.Error("offset tracking", "err", err)
		return
	}
	if advanced {
		pt.marked = next
	}
}

// markForCommit marks the partition's offset to commit in the session and returns it, -1
// if none. Marking is idempotent, and sarama ignores a mark below the last one.
func (pt *partition) markForCommit() int64 {
	off := pt.markedOffset()
	if off >= 0 {
		pt.sess.MarkOffset(pt.topic, pt.id, off, "")
	}
	return off
}

// abandon records a message given up on: its offset is never marked, so neither is any
// later one of this claim, and the message is consumed again after the partition is released.
func (pt *partition) abandon() {
	pt.gauge.Dec()
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.inFlight--
	pt.signal()
}

// signal wakes drain; pt.mu is held.
func (pt *partition) signal() {
	if !pt.draining {
		return
	}
	select {
	case pt.changed <- struct{}{}:
	default:
	}
}

func (pt *partition) isRevoked() bool {
	select {
	case <-pt.revoked:
		return true
	default:
		return false
	}
}

func (pt *partition) markedOffset() int64 {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.marked
}

// drain stops new work for the partition (messages not yet started are abandoned) and waits
// for the messages in flight to finish, at most bound or until ctx ends.
func (pt *partition) drain(ctx context.Context, bound time.Duration) {
	close(pt.revoked)
	timer := time.NewTimer(bound)
	defer timer.Stop()
	for {
		pt.mu.Lock()
		pt.draining = true
		n := pt.inFlight
		pt.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-pt.changed:
		case <-timer.C:
			pt.log.Warn("partition released with messages still in flight; they will be consumed again", "inFlight", n, "bound", bound)
			return
		case <-ctx.Done():
			pt.log.Warn("grace period over; partition released with messages in flight; they will be consumed again", "inFlight", n)
			return
		}
	}
}

// close stops marking offsets for the partition, cancels the context of its messages still
// running, marks the last offset to commit in the session and returns it.
func (pt *partition) close() int64 {
	pt.cancel()
	pt.mu.Lock()
	pt.closed = true
	pt.mu.Unlock()
	return pt.markForCommit()
}
