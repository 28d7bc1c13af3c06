package runtime

import "time"

// maxPending bounds the finished messages a worker holds before it records them.
const maxPending = 16

// completions are messages of one partition that a worker's handler finished and that the
// worker has not recorded in the partition yet. A worker records the messages it runs back to
// back under one lock of their partition instead of one lock each: every worker finishing
// messages of the partition, and its claim admitting more, take that lock.
//
// The worker records them before it starts a message of another partition, before a failed
// attempt's backoff or dead letter, before it waits for work, when it stops, and once
// maxPending are held. So what a message costs the others is unchanged, with one exception: a
// handler that hangs holds up, besides its own message, the finished messages of the same
// partition that its worker ran just before it (at most maxPending-1). The partition commits up
// to the first of them instead of up to the hung message, and if it is released with the hung
// message still running (past the drain timeout), they are consumed again with it.
type completions struct {
	part    *partition
	n       int
	offsets [maxPending]int64
	took    [maxPending]time.Duration
}

// add holds j, which the worker's handler finished: its offset and the time since it was
// admitted. The caller settled j (job.settle) and recycles it next.
func (c *completions) add(j *job) {
	if c.part != j.part {
		c.record()
		c.part = j.part
	}
	c.offsets[c.n], c.took[c.n] = j.offset, time.Since(j.start)
	if c.n++; c.n == maxPending {
		c.record()
	}
}

// recordBefore records what is held unless j is of the same partition.
func (c *completions) recordBefore(j *job) {
	if c.part != j.part {
		c.record()
	}
}

// record records the messages held in their partition, under one lock.
func (c *completions) record() {
	if c.n == 0 {
		return
	}
	c.part.completeRun(c.offsets[:c.n], c.took[:c.n])
	c.n = 0
}
