package scaling

import "fmt"

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// Offsets are what the lag reader saw of one partition at one poll.
type Offsets struct {
	TopicPartition
	// Newest is the high watermark: the offset the next message will get.
	Newest int64
	// Oldest is the log start offset, or -1 when unknown.
	Oldest int64
	// Committed is the group's committed offset (the next offset it will read), or -1 when
	// the group has no commit for the partition.
	Committed int64
}

// PartitionLag is the lag of one partition as the pipeline's consumers will see it.
type PartitionLag struct {
	TopicPartition
	Lag int64
	// Committed is the committed offset, or -1 when there is none or it is out of range.
	Committed int64
	// Reset is true when the consumers will start from initialOffset: there is no commit, or
	// the committed offset is outside the retained log.
	Reset bool
}

// Lag computes a partition's lag the way the consumer group will work it off. A committed
// offset that is missing (-1) or outside [oldest, newest] is not used as is: the consumers
// reset to initialOffset, so with Latest the partition has no lag, and with Earliest its lag is
// the retained log, newest - oldest (zero when the oldest offset is unknown, so an unknown
// offset never inflates the lag).
func Lag(o Offsets, earliest bool) PartitionLag {
	pl := PartitionLag{TopicPartition: o.TopicPartition, Committed: o.Committed}
	invalid := o.Committed < 0 || o.Committed > o.Newest || (o.Oldest >= 0 && o.Committed < o.Oldest)
	if !invalid {
		pl.Lag = o.Newest - o.Committed
		return pl
	}
	pl.Reset, pl.Committed = true, -1
	if earliest && o.Oldest >= 0 && o.Newest > o.Oldest {
		pl.Lag = o.Newest - o.Oldest
	}
	return pl
}

// StallState is what the stall tracker remembers of one partition between polls.
type StallState struct {
	Committed int64
	// Polls is how many consecutive polls saw lag with this committed offset.
	Polls int
}

// Stalls is the result of TrackStalls.
type Stalls struct {
	State map[TopicPartition]StallState
	// Stalled lists the stalled partitions in input order.
	Stalled []TopicPartition
	// Progress is true when some committed offset moved since the previous poll.
	Progress bool
}

// TrackStalls updates the per-partition stall state with one poll. A partition is stalled when
// it has had lag and the same valid committed offset for at least threshold consecutive polls
// while the pipeline was consuming (ready replicas running); a partition without consumers
// cannot stall, so consuming=false resets every count.
func TrackStalls(prev map[TopicPartition]StallState, lags []PartitionLag, consuming bool, threshold int) Stalls {
	s := Stalls{State: make(map[TopicPartition]StallState, len(lags))}
	for _, pl := range lags {
		old, seen := prev[pl.TopicPartition]
		if seen && old.Committed != pl.Committed && pl.Committed >= 0 {
			s.Progress = true
		}
		st := StallState{Committed: pl.Committed}
		if consuming && seen && pl.Lag > 0 && pl.Committed >= 0 && old.Committed == pl.Committed {
			st.Polls = old.Polls + 1
		}
		s.State[pl.TopicPartition] = st
		if threshold > 0 && st.Polls >= threshold {
			s.Stalled = append(s.Stalled, pl.TopicPartition)
		}
	}
	return s
}
