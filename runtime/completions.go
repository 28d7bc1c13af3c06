package runtime

import (
	"sync"
	"time"
)

// maxPending bounds the finished messages a worker holds before it records them.
const maxPending = 16

// heldUnder is the most a worker's messages may take, one after the other, for the worker to
// hold them: a message finished longer than this after the worker's previous one is
// recorded at once with those held. Handlers that slow save nothing by a shared lock, and
// what they finished should not wait on their next message.
const heldUnder = time.Millisecond

// completions are messages of one partition that a worker's handler finished and that are
// not recorded in the partition yet. A worker records the messages it runs back to back under
// one lock of their partition instead of one lock each: every worker finishing messages of
// the partition, and its claim admitting more, take that lock.
//
// The worker records them before it starts a message of another partition, before a failed
// attempt's backoff or dead letter, before it waits for work, when it stops, once maxPending
// are held, and with a message that took longer than heldUnder after the one before. A handler that hangs cannot: the messages its worker finished just
// before, of the same partition, are then recorded by the claims (pool.recordFinished) at the
// next commit and when the partition is released, so a hung handler delays them by at most a
// commit interval and never holds up a release.
type completions struct {
	// mu is the worker's, uncontended but for the claims' commits and releases. part is
	// written under it by the worker only, which reads it without.
	mu      sync.Mutex
	part    *partition
	n       int
	offsets [maxPending]int64
	took    [maxPending]time.Duration
	last    time.Time // when the worker's previous message finished
}

// add holds j, which the worker's handler finished: its offset and the time since it was
// admitted. The caller settled j (job.settle) and recycles it next.
func (c *completions) add(j *job) {
	now := time.Now()
	slow := now.Sub(c.last) > heldUnder
	c.last = now
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.part != j.part {
		c.recordLocked()
		c.part = j.part
	}
	c.offsets[c.n], c.took[c.n] = j.offset, now.Sub(j.start)
	if c.n++; c.n == maxPending || slow {
		c.recordLocked()
	}
}

// recordBefore records what is held unless j is of the same partition: the worker calls it
// before it starts j.
func (c *completions) recordBefore(j *job) {
	if c.part != j.part {
		c.record()
	}
}

// record records the messages held in their partition.
func (c *completions) record() {
	c.mu.Lock()
	c.recordLocked()
	c.mu.Unlock()
}

// recordLocked records the messages held in their partition, under one lock of it; c.mu is
// held.
func (c *completions) recordLocked() {
	if c.n == 0 {
		return
	}
	c.part.completeRun(c.offsets[:c.n], c.took[:c.n])
	c.n = 0
}
