package runtime

import (
	"sync"
	"sync/atomic"

	"github.com/IBM/sarama"
)

// inbound bounds, for one consumer group session, the bytes sarama delivered and the claims
// did not admit yet, and accounts for them claim by claim. On the incremental protocol a
// session outlives its claims: the bytes of the messages a revoked claim never admitted
// (those sarama drops when it closes the partition, those the feeder held) go back to the
// gate when the claim closes, or the gate would shrink with every rebalance.
type inbound struct {
	gate *byteGate
	done <-chan struct{} // the session's: waits end with it

	// claims maps a partition to its current claim: a sync.Map, so that sarama's feeders,
	// one per partition, find theirs for every message without a lock they would share.
	claims sync.Map // topicPartition -> *inboundClaim
}

type topicPartition struct {
	topic     string
	partition int32
}

// inboundClaim is one claim's share of the gate.
type inboundClaim struct {
	mu       sync.Mutex
	owed     int64         // taken for delivered messages, not given back yet; under mu
	closed   atomic.Bool   // the claim ended; set under mu
	released chan struct{} // closed with it: a wait for room for its messages ends
}

func newInbound(limit int64, done <-chan struct{}) *inbound {
	return &inbound{gate: newByteGate(limit), done: done}
}

// claim is the partition's current claim, created on first use: sarama starts fetching
// before ConsumeClaim runs.
func (in *inbound) claim(tp topicPartition) *inboundClaim {
	if c, ok := in.claims.Load(tp); ok {
		return c.(*inboundClaim)
	}
	c, _ := in.claims.LoadOrStore(tp, &inboundClaim{released: make(chan struct{})})
	return c.(*inboundClaim)
}

// take takes m's bytes (n, its messageSize) for its claim, waiting for room; it gives up
// when the session or the claim ends. A message of a closed claim passes without taking
// bytes: it is one sarama delivers while closing the partition, or the first of the
// partition's next claim before ConsumeClaim opened it (then admitted gives back at most
// what the claim owes).
func (in *inbound) take(m *sarama.ConsumerMessage, n int64) {
	c := in.claim(topicPartition{m.Topic, m.Partition})
	if c.closed.Load() {
		return
	}
	if !in.gate.acquire(n, in.done, c.released) {
		return
	}
	c.mu.Lock()
	if c.closed.Load() {
		n, c.owed = c.owed+n, 0
		c.mu.Unlock()
		in.gate.release(n)
		return
	}
	c.owed += n
	c.mu.Unlock()
}

// open starts the partition's claim in ConsumeClaim; a closed one of an earlier claim of
// the partition is replaced.
func (in *inbound) open(tp topicPartition) *inboundClaim {
	if c, ok := in.claims.Load(tp); ok && c.(*inboundClaim).closed.Load() {
		in.claims.CompareAndDelete(tp, c)
	}
	return in.claim(tp)
}

// admitted gives back the bytes of admitted messages, at most what the claim owes.
func (in *inbound) admitted(c *inboundClaim, n int64) {
	c.mu.Lock()
	n = min(n, c.owed)
	c.owed -= n
	c.mu.Unlock()
	in.gate.release(n)
}

// close ends the claim and gives back what it still owes.
func (in *inbound) close(c *inboundClaim) {
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		return
	}
	c.closed.Store(true)
	n := c.owed
	c.owed = 0
	c.mu.Unlock()
	close(c.released)
	in.gate.release(n)
}
