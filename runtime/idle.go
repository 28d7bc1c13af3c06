package runtime

import (
	"sync"
	"sync/atomic"
	"time"
)

// idleClock measures how long a phase was idle: in a consumer group session with nothing
// consumed. Time without a session (joining, rebalancing, the coordinator unreachable) never
// counts: a replica that cannot join has not shown that there is nothing to consume. Quiet
// time of earlier sessions of the phase counts until something is consumed, so the eager
// rebalances of a busy group do not restart the window.
type idleClock struct {
	lastConsumed atomic.Int64 // unix nanoseconds; set on every admission, so lock-free

	mu        sync.Mutex
	inSession bool
	start     int64         // unix nanoseconds: the session's start
	banked    time.Duration // quiet time in earlier sessions since the last consumption
}

// consumed restarts the count.
func (c *idleClock) consumed(now time.Time) { c.lastConsumed.Store(now.UnixNano()) }

// sessionStarted starts counting.
func (c *idleClock) sessionStarted(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inSession, c.start = true, now.UnixNano()
}

// sessionEnded keeps the session's quiet time and stops counting.
func (c *idleClock) sessionEnded(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inSession {
		c.banked = c.quietLocked(now)
	}
	c.inSession = false
}

// quiet is the idle time at now; 0 outside a session.
func (c *idleClock) quiet(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inSession {
		return 0
	}
	return c.quietLocked(now)
}

// quietLocked: messages are consumed only in a session, so one consumed after the session's
// start was consumed in it, and the earlier sessions' quiet time no longer counts.
func (c *idleClock) quietLocked(now time.Time) time.Duration {
	if last := c.lastConsumed.Load(); last > c.start {
		return time.Duration(now.UnixNano() - last)
	}
	return c.banked + time.Duration(now.UnixNano()-c.start)
}
