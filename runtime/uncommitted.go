package runtime

import "github.com/prometheus/client_golang/prometheus"

// The offsets a partition cannot commit yet are bounded. In Unordered and Key ordering the
// messages after one that has not finished go on and finish (a slow handler, a message
// retried with no dead-letter topic), and the partition's offset tracker keeps each of them
// until the one before finishes. A message that never finishes made the tracker grow with
// the partition's traffic until the pod ran out of memory, restarted at that message and
// grew again. Once settings.maxUncommitted offsets are tracked, the partition's fetching
// pauses instead, and resumes when the tracker is down to half of them.
//
// Pausing is sarama's (ConsumerGroup.Pause): its fetch requests leave the partition out, so
// the partition's claim simply receives nothing more, and the other partitions fetched from
// the same broker go on. Not reading the claim's channel instead would stop the broker's
// fetches for every partition once the channel filled (MaxProcessingTime, kafka.go). What was
// fetched before the pause is still delivered and admitted: the bound is exceeded by at most
// a fetch and sarama's channel.

// pauser pauses and resumes the fetching of partitions: the phase's consumer group.
type pauser interface {
	Pause(partitions map[string][]int32)
	Resume(partitions map[string][]int32)
}

// uncommittedBound is a partition's bound on its tracked offsets; the zero value bounds
// nothing. paused changes under the partition's lock.
type uncommittedBound struct {
	group  pauser
	max    int
	gauge  prometheus.Gauge // kpipe_partitions_paused
	paused bool
}

// pauseIfFullLocked pauses the partition's fetching while it tracks max offsets or more. It
// pauses again at every admission while over the bound: sarama keeps the pause of a partition
// across sessions, and a claim of the same partition ending on this replica resumes it
// (resumeLocked), which must not leave a later claim unbounded. pt.mu is held.
func (pt *partition) pauseIfFullLocked() {
	b := &pt.bound
	n := pt.tracker.Len()
	if b.max <= 0 || n < b.max {
		return
	}
	b.group.Pause(pt.own())
	if b.paused {
		return
	}
	b.paused = true
	b.gauge.Inc()
	oldest, _ := pt.tracker.Oldest()
	pt.log.Warn("partition paused: too many finished offsets wait behind one that has not finished; it resumes when that one does",
		"tracked", n, "max", b.max, "oldestUnfinished", oldest)
}

// resumeIfRoomLocked resumes a paused partition once it tracks half its bound or fewer.
// pt.mu is held.
func (pt *partition) resumeIfRoomLocked() {
	if pt.bound.paused && pt.tracker.Len() <= pt.bound.max/2 {
		pt.resumeLocked()
		pt.log.Info("partition resumed", "tracked", pt.tracker.Len())
	}
}

// resumeLocked resumes a paused partition: when it has room again, and when it is released
// (sarama would keep it paused for its next claim on this replica). pt.mu is held.
func (pt *partition) resumeLocked() {
	b := &pt.bound
	if !b.paused {
		return
	}
	b.group.Resume(pt.own())
	b.paused = false
	b.gauge.Dec()
}

// own is the partition as sarama's Pause and Resume name it.
func (pt *partition) own() map[string][]int32 {
	return map[string][]int32{pt.topic: {pt.id}}
}
