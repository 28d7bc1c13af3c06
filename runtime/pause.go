package runtime

import "github.com/prometheus/client_golang/prometheus"

// A partition's fetching pauses (sarama's ConsumerGroup.Pause) for either of two reasons, so
// that a message that does not finish (a slow handler, one retried with no dead-letter topic)
// holds up its own partition only, within bounded memory:
//
//   - Too many offsets tracked (full). In Unordered and Key ordering the messages after it go
//     on and finish, and the partition's offset tracker keeps each of them until it does. It
//     grew with the partition's traffic until the pod ran out of memory, restarted at that
//     message and grew again. Past settings.maxUncommitted tracked offsets the partition
//     pauses, and resumes when they are down to half.
//   - Its lanes hold its share of the pool (held, holdback.go). In Partition ordering (and in
//     Key ordering for a busy key) the messages after it wait in its lane, each holding one of
//     the pool's slots; they filled the pool and every other partition of the replica stopped.
//     Its claim now holds its next messages back instead, and pauses the partition so that
//     what it holds back is bounded.
//
// Pausing leaves the partition out of sarama's fetch requests: its claim receives nothing more,
// and the other partitions fetched from the same broker go on. A claim that merely stopped
// reading its channel would stop the broker's fetches for every partition once the channel
// filled (MaxProcessingTime, kafka.go). What was fetched before the pause is still delivered.

// pauser pauses and resumes the fetching of partitions: the phase's consumer group.
type pauser interface {
	Pause(partitions map[string][]int32)
	Resume(partitions map[string][]int32)
}

// fetchPause is a partition's pause state; the zero value never pauses. It changes
// under the partition's lock.
type fetchPause struct {
	group  pauser
	max    int              // tracked offsets that make the partition full (0: no bound)
	gauge  prometheus.Gauge // kpipe_partitions_paused
	full   bool             // max offsets or more tracked, until down to max/2
	held   bool             // its claim holds its messages back (holdback.go)
	paused bool             // as sarama was last told
}

// syncPauseLocked tells sarama to pause the partition while it is full or held back, and to
// resume it once it is neither. It pauses again at every call while paused: sarama keeps the
// pause of a partition across sessions, and an earlier claim of the same partition ending on
// this replica resumes it (close), which must not leave a later claim unbounded. pt.mu is held.
func (pt *partition) syncPauseLocked() {
	b := &pt.fetch
	switch want := b.full || b.held; {
	case want:
		b.group.Pause(pt.own())
		if !b.paused {
			b.paused = true
			b.gauge.Inc()
		}
	case b.paused:
		b.group.Resume(pt.own())
		b.paused = false
		b.gauge.Dec()
	}
}

// pauseIfFullLocked pauses the partition while it tracks max offsets or more. pt.mu is held.
func (pt *partition) pauseIfFullLocked() {
	b := &pt.fetch
	n := pt.tracker.Len()
	if b.max <= 0 || n < b.max {
		return
	}
	if !b.full {
		b.full = true
		oldest, _ := pt.tracker.Oldest()
		pt.log.Warn("partition paused: too many finished offsets wait behind one that has not finished; it resumes when that one does",
			"tracked", n, "max", b.max, "oldestUnfinished", oldest)
	}
	pt.syncPauseLocked()
}

// resumeIfRoomLocked ends fullness once the partition tracks half its bound or fewer. pt.mu
// is held.
func (pt *partition) resumeIfRoomLocked() {
	if b := &pt.fetch; b.full && pt.tracker.Len() <= b.max/2 {
		b.full = false
		pt.log.Info("partition no longer full", "tracked", pt.tracker.Len())
		pt.syncPauseLocked()
	}
}

// hold records whether the partition's claim holds its messages back, and pauses or resumes it.
func (pt *partition) hold(held bool) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.fetch.held == held || pt.closed {
		return
	}
	pt.fetch.held = held
	pt.syncPauseLocked()
}

// unpauseLocked resumes the partition when it is released: sarama would keep it paused for
// its next claim on this replica. pt.mu is held.
func (pt *partition) unpauseLocked() {
	pt.fetch.full, pt.fetch.held = false, false
	pt.syncPauseLocked()
}

// own is the partition as sarama's Pause and Resume name it.
func (pt *partition) own() map[string][]int32 {
	return map[string][]int32{pt.topic: {pt.id}}
}
