package runtime

import (
	"sync"
	"time"
)

// maxPending bounds the finished messages a worker holds before it records them.
const maxPending = 16

// completions are messages of one partition that a worker's handler finished and that are
// not recorded in the partition yet. A worker records the messages it runs back to back under
// one lock of their partition instead of one lock each: every worker finishing messages of
// the partition, and its claim admitting more, take that lock.
//
// The worker records them before it starts a message of another partition, before a failed
// attempt's backoff or dead letter, before it waits for work, when it stops, and once
// maxPending are held. It cannot while it is in a handler, so the claims record them too
// (pool.recordFinished), before every commit and when the partition is released: a slow or
// hung handler delays them by at most a commit interval (the partition counts them in flight
// meanwhile), every commit includes every message finished before it, and a release never
// waits for them.
type completions struct {
	// mu is the worker's, uncontended but for the claims' commits and releases. part is
	// written under it by the worker only, which reads it without.
	mu      sync.Mutex
	part    *partition
	n       int
	offsets [maxPending]int64
	took    [maxPending]time.Duration
}

// add holds j, which the worker's handler finished: its offset and the time since it was
// admitted. The caller settled j (job.settle) and recycles it next.
func (c *completions) add(j *job) {
	took := time.Since(j.start) // not time.Now: reading the wall clock too costs as much as the lock saves
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.part != j.part {
		c.recordLocked()
		c.part = j.part
	}
	c.offsets[c.n], c.took[c.n] = j.offset, took
	if c.n++; c.n == maxPending {
		c.recordLocked()
	}
}

// recordBefore records what is held unless j is of the same partition: the worker calls it
// before it starts j. A worker that never held anything (a forward pipeline's) takes no lock.
func (c *completions) recordBefore(j *job) {
	if c.part != nil && c.part != j.part {
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
