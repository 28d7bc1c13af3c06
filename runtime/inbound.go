package runtime

import (
	"sync"
	"sync/atomic"
)

// inbound bounds, for one consumer group session, the bytes sarama delivered and the claims
// did not admit yet, and accounts for them claim by claim. On the incremental protocol a
// session outlives its claims: the bytes of the messages a revoked claim never admitted
// (those sarama drops when it closes the partition, those the feeder held) go back to the
// gate when the claim closes, or the gate would shrink with every rebalance.
//
// A claim takes the gate's bytes in chunks of credit (up to chunk at a time), which its
// feeder spends message by message: the gate is one counter every feeder shares, and taking
// it for every message cost more than the rest of the accounting (docs/benchmarks.md, "Runs
// of a partition's batches"). Credit is only taken while the gate has room and nobody waits,
// and the gate's first waiter takes back every claim's credit (reclaim): credit never keeps
// a message waiting, nor a message larger than the gate from passing alone.
type inbound struct {
	gate  *byteGate
	done  <-chan struct{} // the session's: waits end with it
	chunk int64           // the credit a claim takes at once (creditChunk)

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

	// delivered is bytes sarama's feeder delivered and did not count in the decoded fetches
	// yet (claims.OnConsume): only the partition's feeder adds to it.
	delivered atomic.Int64
	// credit is bytes taken from the gate for the claim's next messages (see inbound).
	credit atomic.Int64
}

// newInbound makes the gate of a session whose claims share limit bytes.
func newInbound(limit int64, partitions int, done <-chan struct{}) *inbound {
	in := &inbound{gate: newByteGate(limit), done: done, chunk: creditChunk(limit, partitions)}
	in.gate.onWait = in.reclaim
	return in
}

// creditChunk is the credit a claim takes at once: a quarter of the gate split between the
// session's partitions, at most maxCredit. Unused credit thus holds at most a quarter of the
// gate, whatever the partitions.
func creditChunk(limit int64, partitions int) int64 {
	return min(limit/int64(4*max(partitions, 1)), maxCredit)
}

// maxCredit bounds a claim's credit: a hundred or so small messages (messageSize).
const maxCredit = 64 << 10

// claim is the partition's current claim, created on first use: sarama starts fetching
// before ConsumeClaim runs.
func (in *inbound) claim(tp topicPartition) *inboundClaim {
	if c, ok := in.claims.Load(tp); ok {
		return c.(*inboundClaim)
	}
	c, _ := in.claims.LoadOrStore(tp, &inboundClaim{released: make(chan struct{})})
	return c.(*inboundClaim)
}

// take takes a message's bytes (n, its messageSize) for its claim c, waiting for room; it gives up
// when the session or the claim ends. A message of a closed claim passes without taking
// bytes: it is one sarama delivers while closing the partition, or the first of the
// partition's next claim before ConsumeClaim opened it (then admitted gives back at most
// what the claim owes).
func (in *inbound) take(c *inboundClaim, n int64) {
	if c.closed.Load() {
		return
	}
	if !c.spend(n) {
		if !in.gate.acquire(n, in.done, c.released) {
			return
		}
		in.grant(c)
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

// spend takes n bytes of c's credit, if it holds that much.
func (c *inboundClaim) spend(n int64) bool {
	for {
		cr := c.credit.Load()
		if cr < n {
			return false
		}
		if c.credit.CompareAndSwap(cr, cr-n) {
			return true
		}
	}
}

// grant gives c a chunk of credit if the gate has room for it and nobody waits. The credit
// goes back at once if the claim closed or someone started to wait meanwhile: close or the
// waiter's reclaim may have looked before it was added.
func (in *inbound) grant(c *inboundClaim) {
	if in.chunk <= 0 || !in.gate.tryAcquire(in.chunk) {
		return
	}
	c.credit.Add(in.chunk)
	if c.closed.Load() || in.gate.waiters.Load() > 0 {
		in.giveBackCredit(c)
	}
}

// giveBackCredit gives c's credit back to the gate.
func (in *inbound) giveBackCredit(c *inboundClaim) {
	if n := c.credit.Swap(0); n > 0 {
		in.gate.release(n)
	}
}

// reclaim gives every claim's credit back to the gate; its first waiter calls it.
func (in *inbound) reclaim() {
	in.claims.Range(func(_, c any) bool {
		in.giveBackCredit(c.(*inboundClaim))
		return true
	})
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

// close ends the claim and gives back what it still owes and its credit.
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
	in.giveBackCredit(c)
}
