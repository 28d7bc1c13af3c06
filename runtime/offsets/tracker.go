// Package offsets tracks the offsets of one partition that are being processed out of order
// and tells which offset is safe to commit.
//
// Workers finish messages in any order. Committing the offset of a message that finished
// while an earlier one is still running would skip the earlier one after a crash, so a
// Tracker only ever reports the end of the contiguous run of finished offsets.
package offsets

import (
	"cmp"
	"fmt"
	"slices"
)

// Tracker holds the offsets of one partition that were handed out and not yet finished, and
// those finished after the oldest one not finished. Its memory grows with those (Len), not
// with lag: when one offset never finishes while later ones do, it grows with every offset
// added, and the caller bounds it (the runtime pauses the partition). It is not safe for
// concurrent use: the caller serializes the calls (the runtime makes them under the lock of
// the partition the Tracker belongs to).
type Tracker struct {
	pending []entry // ascending offsets; pending[0] is the oldest unfinished one
	buf     []entry // the array pending lives in, reused once pending empties
	last    int64   // last offset added, -1 before the first
	next    int64   // offset to commit: every tracked offset below it has finished; -1 if none yet
	stamp   int64   // stamp of the offset next-1, 0 if none
}

type entry struct {
	offset int64
	stamp  int64 // the caller's (the runtime: the record timestamp in unix ms), 0 if none
	done   bool
}

// New returns an empty Tracker.
func New() *Tracker {
	return &Tracker{last: -1, next: -1}
}

// Add records that offset was handed out. Offsets must be added in ascending order; gaps
// (compacted records, transaction markers) are fine.
func (t *Tracker) Add(offset int64) error { return t.AddStamped(offset, 0) }

// AddStamped is Add with a stamp that Stamp reports once the offset to commit passed it.
func (t *Tracker) AddStamped(offset, stamp int64) error {
	if offset <= t.last {
		return fmt.Errorf("offset %d added after offset %d: offsets must ascend", offset, t.last)
	}
	t.last = offset
	if len(t.pending) == 0 && cap(t.buf) > 0 {
		t.pending = t.buf[:0]
	}
	t.pending = append(t.pending, entry{offset: offset, stamp: stamp})
	if cap(t.pending) > cap(t.buf) {
		t.buf = t.pending[:0:cap(t.pending)]
	}
	return nil
}

// Done records that offset finished. It returns the offset to commit (one past the highest
// offset below which everything finished) and whether that offset moved forward.
func (t *Tracker) Done(offset int64) (next int64, advanced bool, err error) {
	i, found := 0, len(t.pending) > 0 && t.pending[0].offset == offset // the oldest: messages mostly finish in order
	if !found {
		i, found = slices.BinarySearchFunc(t.pending, offset, func(e entry, o int64) int { return cmp.Compare(e.offset, o) })
	}
	if !found {
		return t.next, false, fmt.Errorf("offset %d is not in flight", offset)
	}
	if t.pending[i].done {
		return t.next, false, fmt.Errorf("offset %d finished twice", offset)
	}
	t.pending[i].done = true
	n := 0
	for n < len(t.pending) && t.pending[n].done {
		n++
	}
	if n == 0 {
		return t.next, false, nil
	}
	t.next = t.pending[n-1].offset + 1
	t.stamp = t.pending[n-1].stamp
	t.pending = t.pending[n:]
	if len(t.pending) == 0 {
		t.pending = t.buf[:0] // start over at the front of the array
	}
	return t.next, true, nil
}

// Next is the offset to commit, or -1 when nothing finished yet.
func (t *Tracker) Next() int64 {
	return t.next
}

// Stamp is the stamp of the last offset below Next (the message the offset to commit covers
// last), 0 when none or it had none.
func (t *Tracker) Stamp() int64 {
	return t.stamp
}

// Oldest is the lowest offset added and not finished; false when every offset finished.
func (t *Tracker) Oldest() (int64, bool) {
	if len(t.pending) == 0 {
		return 0, false
	}
	return t.pending[0].offset, true
}

// Len is the number of offsets tracked: those not finished, and those finished after the
// oldest one not finished (the offsets the caller cannot commit yet), 24 bytes each plus the
// spare room of the array they live in.
func (t *Tracker) Len() int {
	return len(t.pending)
}

// InFlight is the number of offsets added and not finished.
func (t *Tracker) InFlight() int {
	n := 0
	for _, e := range t.pending {
		if !e.done {
			n++
		}
	}
	return n
}
