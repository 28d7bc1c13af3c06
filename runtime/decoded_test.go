package runtime

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	gometrics "github.com/rcrowley/go-metrics"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// TestDecodedFetchesTakeTheExcessFromPoolAndWindow: fetches that decode to more than the
// fetch share (test/memory's case: 12 partitions of 1 MiB of snappy at about 15:1, 180 MiB
// alive against a share of 32 MiB) take the excess from the pool and the window, down to a
// quarter of their shares; the next session fetches less and gives the shares back.
func TestDecodedFetchesTakeTheExcessFromPoolAndWindow(t *testing.T) {
	g := NewWithT(t)
	b := newMemoryBudget(256<<20, "", 0)
	reg := gometrics.NewRegistry()
	pl := newPool(kpipev1.OrderingUnordered, 256, 8, b.pool)
	window := newByteGate(b.window)
	d := newDecodedFetches(b, reg, pl, window)

	f, ratio := d.session(12)
	g.Expect(f).To(Equal(int32(1<<20)), "nothing read yet: the fetch share split, 1 MiB at most")
	g.Expect(ratio).To(Equal(1.0))
	g.Expect(pl.capBytes.Load()).To(Equal(b.pool))
	g.Expect(window.limit.Load()).To(Equal(b.window))

	const msg = 256<<10 + msgOverhead
	readAndDeliver := func(wire int64, messages int) {
		gometrics.GetOrRegisterMeter("incoming-byte-rate", reg).Mark(wire)
		for range messages {
			d.delivered(msg)
		}
	}
	readAndDeliver(12<<20, 720) // 12 MiB read, 180 MiB delivered: 15:1
	excess := int64(float64(720*msg)/float64(12<<20)*float64(12<<20)) - b.fetch
	g.Expect(excess).To(BeNumerically(">", 140<<20))
	g.Expect(pl.capBytes.Load()).To(Equal(max(b.pool-excess/2, b.pool/4)))
	g.Expect(window.limit.Load()).To(Equal(max(b.window-(excess-excess/2), b.window/4)))
	g.Expect(pl.capBytes.Load()+window.limit.Load()).To(BeNumerically("<", 64<<20),
		"the pool and the window give up what the decoded fetches hold beyond their share")

	// A broker connection closed: sarama registers a new meter, which counts from 0.
	reg.Unregister("incoming-byte-rate")
	readAndDeliver(12<<20, 720)
	g.Expect(pl.capBytes.Load()).To(Equal(b.pool/4), "the ratio is still 15:1 over both meters")

	f, ratio = d.session(12)
	g.Expect(ratio).To(BeNumerically("~", 15, 0.1))
	g.Expect(f).To(BeNumerically("~", float64(b.fetch)/12/15, 1<<10), "the next session fetches what decodes to the share")
	g.Expect(pl.capBytes.Load()).To(BeNumerically(">", b.pool-(2<<20)), "and the pool has its share back")
	g.Expect(window.limit.Load()).To(BeNumerically(">", b.window-(2<<20)))
}

// TestDecodedFetchesWithoutWindow: with nothing produced, the pool gives up the excess alone;
// without sarama's metrics nothing is known and nothing changes.
func TestDecodedFetchesWithoutWindow(t *testing.T) {
	g := NewWithT(t)
	b := newMemoryBudget(64<<20, "", 0)
	reg := gometrics.NewRegistry()
	pl := newPool(kpipev1.OrderingUnordered, 16, 8, b.pool)
	d := newDecodedFetches(b, reg, pl, nil)
	d.session(4)
	gometrics.GetOrRegisterMeter("incoming-byte-rate", reg).Mark(1 << 20)
	for range 64 {
		d.delivered(64 << 10) // 4 MiB: 4:1
	}
	span := int64(4 * b.partitionFetch(4, 1))
	g.Expect(pl.capBytes.Load()).To(Equal(b.pool - (4*span - b.fetch)))

	off := newPool(kpipev1.OrderingUnordered, 16, 8, b.pool)
	none := newDecodedFetches(b, nil, off, nil)
	none.session(4)
	for range 64 {
		none.delivered(64 << 10)
	}
	g.Expect(off.capBytes.Load()).To(Equal(b.pool))
}

// TestRaisedBoundsWakeWaiters: a consumer waiting for the pool's bytes and a writer waiting
// for the window's go on when the decoded fetches give the bytes back.
func TestRaisedBoundsWakeWaiters(t *testing.T) {
	g := NewWithT(t)
	pl := newPool(kpipev1.OrderingUnordered, 16, 8, 1000)
	n, room := pl.acquireUpTo(context.Background(), 1, 600)
	g.Expect(n).To(Equal(1))
	pl.release(0, room-600)
	pl.setCapBytes(800)
	got := make(chan int, 1)
	go func() {
		n, _ := pl.acquireUpTo(context.Background(), 1, 300)
		got <- n
	}()
	g.Consistently(got, 100*time.Millisecond).ShouldNot(Receive(), "600 + 300 bytes do not fit in 800")
	pl.setCapBytes(1000)
	g.Eventually(got).Should(Receive(Equal(1)))

	gate := newByteGate(1000)
	g.Expect(gate.acquire(600, nil, nil)).To(BeTrue())
	gate.setLimit(800)
	took := make(chan bool, 1)
	go func() { took <- gate.acquire(300, nil, nil) }()
	g.Consistently(took, 100*time.Millisecond).ShouldNot(Receive())
	gate.setLimit(1000)
	g.Eventually(took).Should(Receive(BeTrue()))
}
