package runtime

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// A claim's feeder spends its credit message by message and takes the gate only when the
// credit runs out: a chunk covers many small messages.
func TestInboundClaimSpendsCredit(t *testing.T) {
	g := NewWithT(t)
	in := newInbound(1<<20, 1, make(chan struct{}))
	c := in.open(topicPartition{"t", 0})
	in.take(c, 600) // the gate, and a chunk of credit
	g.Expect(c.credit.Load()).To(Equal(in.chunk))
	used := in.gate.used.Load()
	for range 10 {
		in.take(c, 600)
	}
	g.Expect(in.gate.used.Load()).To(Equal(used), "10 messages spent credit, the gate did not move")
	g.Expect(c.credit.Load()).To(Equal(in.chunk - 6000))
	g.Expect(in.owedBytes()).To(Equal(int64(11 * 600)))
	in.admitted(c, 11*600)
	in.close(c)
	g.Expect(in.gate.used.Load()).To(BeZero(), "closing gives the credit back")
}

// The gate's first waiter takes back the credit every claim holds: here an idle claim's
// credit would keep a message larger than the gate from ever passing alone.
func TestInboundWaiterReclaimsCredit(t *testing.T) {
	g := NewWithT(t)
	in := newInbound(256<<10, 2, make(chan struct{}))
	idle, big := in.open(topicPartition{"t", 0}), in.open(topicPartition{"t", 1})
	in.take(idle, 600)
	in.admitted(idle, 600)
	g.Expect(idle.credit.Load()).To(BeNumerically(">", 0), "the idle claim holds credit")
	passed := make(chan struct{})
	go func() {
		in.take(big, 1<<20) // larger than the gate: passes only while nothing else is held
		close(passed)
	}()
	g.Eventually(passed, 5*time.Second).Should(BeClosed(), "the idle claim's credit was taken back")
	g.Expect(idle.credit.Load()).To(BeZero())
}

// Credit taken while a claim closes or while someone waits goes back at once; with claims
// delivering, admitting and closing concurrently, the gate ends empty.
func TestInboundCreditNeverLeaks(t *testing.T) {
	g := NewWithT(t)
	in := newInbound(64<<10, 8, make(chan struct{}))
	var wg sync.WaitGroup
	for p := range int32(8) {
		wg.Go(func() {
			for range 200 {
				c := in.open(topicPartition{"t", p})
				var owed int64
				for range rand.IntN(50) {
					n := int64(100 + rand.IntN(2000))
					in.take(c, n)
					owed += n
					if rand.IntN(4) == 0 {
						in.admitted(c, owed)
						owed = 0
					}
				}
				in.close(c)
			}
		})
	}
	wg.Wait()
	g.Expect(in.gate.used.Load()).To(BeZero())
	g.Expect(in.gate.waiters.Load()).To(BeZero())
}
