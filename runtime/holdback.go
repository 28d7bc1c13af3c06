package runtime

import (
	"context"
	"time"

	"github.com/IBM/sarama"
)

// Holding back a partition whose lanes hold its share of the pool. A message waiting in a
// busy lane holds one of the pool's slots. When a message does not finish (retried with no
// dead-letter topic, or with a long backoff; a slow handler), the messages of its partition
// (Partition ordering) or of its key (Key ordering) that follow it pile up in its lane, and
// they filled the pool: every other partition of the replica stopped until it finished.
//
// A partition's messages waiting in lanes may now hold at most the pool's slots divided by
// one more than the partitions the replica claims (laneShare): one such partition leaves
// most of the pool to the others, and all of them stuck still leave room. Past its share the
// claim holds the partition's next messages back until a worker has taken the waiting ones
// down to half the share. Meanwhile it reads what sarama delivers into its source, so that
// sarama's fetches for the other partitions go on, gives those messages' bytes back to the
// session's inbound gate (which every partition's feeder shares), and pauses the partition's
// fetching (pause.go) once it holds holdBeforePause of them: what it holds is what sarama had
// fetched before the pause. Messages held back are not admitted: not tracked, so nothing is
// committed past them, and the partition's next owner consumes them again if the partition is
// released meanwhile.

// source is a partition's messages as its claim takes them: those it held back first, then
// sarama's channel.
type source struct {
	msgs <-chan *sarama.ConsumerMessage
	held fifo[*sarama.ConsumerMessage]
	in   *inbound
	ic   *inboundClaim
}

// poll returns the next message without waiting, and whether it was held back: nil when
// none is there now, and open false once sarama closed the channel.
func (s *source) poll() (m *sarama.ConsumerMessage, held, open bool) {
	if s.held.len() > 0 {
		return s.held.pop(), true, true
	}
	select {
	case m, ok := <-s.msgs:
		return m, false, ok
	default:
		return nil, false, true
	}
}

// hold keeps m back, with every message already behind it in sarama's channel, and gives
// their bytes back to the session's inbound gate: the gate is shared by the feeders of every
// partition, which would otherwise wait for the messages a held-back partition does not
// admit. What a claim holds back is bounded by the pause instead (see above). Taking what is
// already there without a select over the hold's other channels, and giving the bytes back
// once, matters: while workers run a partition's busy lanes, its claim holds back most of
// the time, and nearly every message it admits was held first. open is false once sarama
// closed the channel.
func (s *source) hold(m *sarama.ConsumerMessage) (open bool) {
	bytes := int64(0)
	open = true
	for n := 1; m != nil; n++ {
		s.held.push(m)
		bytes += messageSize(m)
		m = nil
		if n < maxHeldAtOnce {
			select {
			case m, open = <-s.msgs:
			default:
			}
		}
	}
	s.in.admitted(s.ic, bytes)
	return open
}

// maxHeldAtOnce is the most messages one hold takes from sarama's channel before the claim
// looks at its other channels again (the room it waits for, the end of its context).
const maxHeldAtOnce = 64

// laneShare is the messages of one partition that may wait in the pool's lanes.
func (h *claims) laneShare() int32 {
	return int32(max(1, h.pool.capacity/int64(h.claimed.Load()+1)))
}

// holdBack waits while the partition's messages waiting in lanes hold its share of the pool
// (see above), reading the messages sarama delivers meanwhile into src; false when ctx ended
// or sarama closed the channel first.
func (h *claims) holdBack(ctx context.Context, pt *partition, src *source) bool {
	share := h.laneShare()
	if pt.waiting.Load() < share {
		return true
	}
	low := share / 2
	pt.resumeAt.Store(low)
	defer pt.resumeAt.Store(-1)
	paused := false
	defer func() {
		if paused {
			pt.hold(false)
		}
	}()
	for pt.waiting.Load() > low {
		select {
		case <-ctx.Done():
			return false
		case <-pt.room:
		case m, ok := <-src.msgs:
			if !ok {
				return false
			}
			if !src.hold(m) {
				return false // sarama closed the channel: nothing to pause for
			}
			// Messages held back by an earlier hold may not all be admitted yet: at or
			// above the mark, not at it.
			if !paused && src.held.len() >= holdBeforePause {
				paused = true
				pt.hold(true)
				if logged, unlogged := pt.holdLog.due(time.Now()); logged {
					h.log.Info("partition paused: its messages waiting in lanes hold its share of the pool; it resumes when they are run",
						"topic", pt.topic, "partition", pt.id, "waiting", pt.waiting.Load(), "share", share,
						"pausesNotLogged", unlogged)
				}
			}
		}
	}
	return true
}

// pauseLog limits the log lines of a claim's hold-back pauses: the first is logged, then at
// most one per pauseLogEvery, which counts the pauses not logged since the one before. In Key
// ordering at full speed a partition's repeated keys make its claim hold back and pause
// hundreds of times a second (docs/benchmarks.md, "The inbound gate's convoy"): a line each
// drowned the log.
type pauseLog struct {
	last     time.Time // of the last line, zero before the first
	unlogged int       // pauses since it
}

// pauseLogEvery is the least time between two log lines of a claim's hold-back pauses.
const pauseLogEvery = time.Minute

// due records a pause at now and reports whether to log it, with the pauses not logged since
// the last line.
func (l *pauseLog) due(now time.Time) (logged bool, unlogged int) {
	if !l.last.IsZero() && now.Sub(l.last) < pauseLogEvery {
		l.unlogged++
		return false, 0
	}
	unlogged = l.unlogged
	l.last, l.unlogged = now, 0
	return true, unlogged
}

// holdBeforePause is the messages a claim holds back before it pauses the partition: a short
// hold, as Partition ordering makes one whenever its lane is fed faster than it runs, costs
// no pause, and a long one is bounded by what sarama fetched before the pause.
const holdBeforePause = 256
