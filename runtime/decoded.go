package runtime

import (
	"math"
	"sync"
	"sync/atomic"

	gometrics "github.com/rcrowley/go-metrics"
)

// decodedFetches accounts for what a fetch holds once sarama decoded it. The fetch share
// bounds the bytes of the responses on the wire (Consumer.Fetch.Default per partition), but
// sarama decodes a whole response when it arrives, decompressing every record batch in it,
// and a batch stays alive until its messages are admitted (and the large ones copied out).
// A compressed response therefore holds ratio times its size, and small messages hold their
// structures besides their bytes (messageSize counts them): 12 partitions of 1 MiB of
// snappy at 15:1 are 180 MiB alive against a fetch share of 32 MiB.
//
// The ratio is learned per phase from the bytes sarama read from the brokers (its
// incoming-byte-rate meter) and the bytes of the messages it delivered. What the fetches may
// decode to beyond the fetch share is taken from the pool's and the producer window's
// shares, each down to a quarter of its own, so that the stages together stay within the
// budget; and each session sizes its fetches so that they decode to the fetch share
// (partitionFetch), which gives the pool and the window their shares back.
type decodedFetches struct {
	budget memoryBudget

	span    atomic.Int64 // wire bytes the claimed partitions may fetch at once: partitions × Fetch.Default
	decoded atomic.Int64 // bytes (messageSize) of the messages sarama delivered
	next    atomic.Int64 // decoded bytes at which the estimate is made again

	mu     sync.Mutex // one estimate at a time; guards what follows
	wire   wireBytes
	pool   *pool
	window *byteGate // the producer window's bytes; nil when nothing is produced
	excess int64     // taken from the pool and the window
}

// decodedFloor: the pool and the window always keep 1/decodedFloor of their shares.
const decodedFloor = 4

// newDecodedFetches accounts for the fetches of a consumer group whose sarama metrics go to
// reg; window is the producer window's bytes, nil when nothing is produced.
func newDecodedFetches(b memoryBudget, reg gometrics.Registry, pl *pool, window *byteGate) *decodedFetches {
	return &decodedFetches{budget: b, wire: wireBytes{reg: reg}, pool: pl, window: window}
}

// wireBytes reads sarama's count of the bytes read from the brokers (its incoming-byte-rate
// meter), 0 when its metrics are off. sarama unregisters the meter when a broker connection
// closes and registers a new one with the next: the counts of the meters seen add up. What
// a closed meter counted after it was replaced is missed, which errs towards a higher ratio.
type wireBytes struct {
	reg   gometrics.Registry
	meter gometrics.Meter
	past  int64 // counted by the meters replaced
}

func (w *wireBytes) read() int64 {
	if w.reg == nil {
		return 0
	}
	m, ok := w.reg.Get("incoming-byte-rate").(gometrics.Meter)
	if !ok {
		return w.past + w.count()
	}
	if m != w.meter {
		w.past += w.count()
		w.meter = m
	}
	return w.past + w.count()
}

func (w *wireBytes) count() int64 {
	if w.meter == nil {
		return 0
	}
	return w.meter.Count()
}

// ratioLocked is how many bytes the messages delivered so far hold per byte read, at least
// 1; 1 while nothing was read. d.mu is held.
func (d *decodedFetches) ratioLocked() float64 {
	r := d.wire.read()
	if r <= 0 {
		return 1
	}
	return max(1, float64(d.decoded.Load())/float64(r))
}

// session sizes the fetches of a session's partitions: the fetch share split between them
// and divided by the ratio (partitionFetch). It returns each partition's fetch size and the
// ratio.
func (d *decodedFetches) session(partitions int) (int32, float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ratio := d.ratioLocked()
	f := d.budget.partitionFetch(partitions, ratio)
	d.span.Store(int64(max(partitions, 1)) * int64(f))
	d.estimateLocked(ratio)
	return f, ratio
}

// delivered counts a message sarama delivers (n bytes, its messageSize); now and then it
// estimates again what the fetches hold.
func (d *decodedFetches) delivered(n int64) {
	if d.decoded.Add(n) >= d.next.Load() {
		d.mu.Lock()
		d.estimateLocked(d.ratioLocked())
		d.mu.Unlock()
	}
}

// estimateLocked sets the pool's and the window's bytes to their shares less what the
// fetches may decode to at ratio beyond the fetch share, half from each when both are
// there. d.mu is held.
func (d *decodedFetches) estimateLocked(ratio float64) {
	b := d.budget
	d.next.Store(d.decoded.Load() + max(b.fetch/8, 64<<10))
	held := math.Min(ratio*float64(d.span.Load()), math.MaxInt64/2)
	excess := max(int64(held)-b.fetch, 0)
	if excess == d.excess {
		return
	}
	d.excess = excess
	if d.window == nil {
		d.pool.setCapBytes(max(b.pool-excess, b.pool/decodedFloor))
		return
	}
	d.pool.setCapBytes(max(b.pool-excess/2, b.pool/decodedFloor))
	d.window.setLimit(max(b.window-(excess-excess/2), b.window/decodedFloor))
}
