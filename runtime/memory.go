package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/IBM/sarama"
	"k8s.io/apimachinery/pkg/api/resource"
)

// EnvMemoryBudget overrides the memory budget found from the container's memory limit: a
// quantity such as "256Mi" or a number of bytes.
const EnvMemoryBudget = "KPIPE_MEMORY_BUDGET"

// The memory budget is a share of the container's memory limit; the Go runtime gets a
// GOMEMLIMIT of a larger share, and the rest is headroom for what the budget does not count
// (goroutine stacks, the runtime's own structures, buffers of the Kafka connections).
const (
	budgetPercent     = 50 // of the memory limit: what the stages may hold
	goMemLimitPercent = 85 // of the memory limit: the Go runtime's soft limit
	defaultBudget     = 256 << 20
	minBudget         = 1 << 20
)

// Shares of the budget, in eighths: the fetch responses sarama is parsing, the messages
// sarama delivered and the claims did not admit yet, the pool, the producer window.
const (
	fetchEighths   = 1
	inboundEighths = 1
	poolEighths    = 3
	windowEighths  = 3
)

// Per-partition fetch sizes (Consumer.Fetch.Default) lie between these, whatever the
// budget and the partitions claimed.
const (
	minPartitionFetch = 32 << 10
	maxPartitionFetch = 1 << 20
)

// memoryBudget is the bound in bytes of what the runtime holds, split between its stages.
type memoryBudget struct {
	total   int64 // everything below
	source  string
	limit   int64 // the memory limit the budget comes from (0 when none is known)
	fetch   int64 // Consumer.Fetch.MaxBytes: one fetch response per broker
	inbound int64 // delivered by sarama, waiting to be admitted into the pool
	pool    int64 // admitted into the pool: waiting in lanes or being processed
	window  int64 // written to Kafka, waiting for the broker's ack
}

func newMemoryBudget(total int64, source string, limit int64) memoryBudget {
	total = max(total, minBudget)
	return memoryBudget{
		total: total, source: source, limit: limit,
		fetch:   total * fetchEighths / 8,
		inbound: total * inboundEighths / 8,
		pool:    total * poolEighths / 8,
		window:  total * windowEighths / 8,
	}
}

// partitionFetch is the fetch size of each of n claimed partitions: the fetch share split
// between them, and divided by ratio, the bytes a fetched byte decodes to (decoded.go).
func (b memoryBudget) partitionFetch(n int, ratio float64) int32 {
	f := int64(float64(b.fetch) / float64(max(n, 1)) / max(ratio, 1))
	return int32(min(max(f, minPartitionFetch), maxPartitionFetch))
}

// resolveMemoryBudget finds the budget: explicit (WithMemoryBudget, the spec), else
// KPIPE_MEMORY_BUDGET, else a share of the cgroup's memory limit, else defaultBudget.
func resolveMemoryBudget(explicit int64, getenv func(string) string, cg cgroupFiles) (memoryBudget, error) {
	limit := cgroupMemoryLimit(cg)
	if explicit > 0 {
		return newMemoryBudget(explicit, "spec", limit), nil
	}
	if v := getenv(EnvMemoryBudget); v != "" {
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Value() <= 0 {
			return memoryBudget{}, fmt.Errorf("%s=%q: a positive quantity such as 256Mi is required", EnvMemoryBudget, v)
		}
		return newMemoryBudget(q.Value(), EnvMemoryBudget, limit), nil
	}
	if limit > 0 {
		return newMemoryBudget(limit*budgetPercent/100, "cgroup memory limit", limit), nil
	}
	return newMemoryBudget(defaultBudget, "default (no memory limit found)", 0), nil
}

// goMemLimit is the GOMEMLIMIT that goes with the budget: a share of the memory limit, or,
// without one, of the limit the budget implies.
func (b memoryBudget) goMemLimit() int64 {
	limit := b.limit
	if limit <= 0 {
		limit = b.total * 100 / budgetPercent
	}
	return limit * goMemLimitPercent / 100
}

// applyGoMemLimit sets the Go runtime's soft memory limit for the budget, unless GOMEMLIMIT
// is set in the environment; it returns the limit in force.
func (b memoryBudget) applyGoMemLimit(getenv func(string) string) int64 {
	if getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1)
	}
	l := b.goMemLimit()
	debug.SetMemoryLimit(l)
	return l
}

// cgroupFiles locates the cgroup hierarchy (root) and the process's own cgroups (self).
type cgroupFiles struct{ root, self string }

// hostCgroup is where the process's cgroups are found.
var hostCgroup = cgroupFiles{root: "/sys/fs/cgroup", self: "/proc/self/cgroup"}

// cgroupMemoryLimit is the memory limit of the process's cgroup (v2, then v1), 0 when there
// is none.
func cgroupMemoryLimit(c cgroupFiles) int64 {
	v1, v2 := cgroupPaths(c.self)
	root := c.root
	for _, f := range []string{
		filepath.Join(root, v2, "memory.max"),
		filepath.Join(root, "memory.max"),
		filepath.Join(root, "memory", v1, "memory.limit_in_bytes"),
		filepath.Join(root, "memory", "memory.limit_in_bytes"),
	} {
		l, err := readLimit(f)
		switch {
		case err == nil:
			return l
		case errors.Is(err, errNoLimit):
			return 0
		}
	}
	return 0
}

// cgroupPaths reads the process's cgroup of the v1 memory controller and of the v2
// hierarchy from a /proc/self/cgroup file.
func cgroupPaths(file string) (v1, v2 string) {
	f, err := os.Open(file)
	if err != nil {
		return "/", "/"
	}
	defer func() { _ = f.Close() }()
	v1, v2 = "/", "/"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case strings.Contains(","+parts[1]+",", ",memory,"):
			v1 = parts[2]
		}
	}
	return v1, v2
}

// errNoLimit means the file exists and says there is no limit.
var errNoLimit = errors.New("no memory limit")

// readLimit reads a memory.max (v2) or memory.limit_in_bytes (v1) file. "max" and the huge
// values v1 uses for no limit mean none.
func readLimit(file string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, errNoLimit
	}
	l, err := strconv.ParseInt(s, 10, 64)
	if err != nil || l <= 0 || l >= 1<<60 {
		return 0, errNoLimit
	}
	return l, nil
}

// byteGate bounds the bytes held by one stage. acquire waits while the bytes would pass
// the limit, in the order the waiters came, except that a holder alone always goes through:
// a message larger than the limit passes on its own. Without waiters, acquire and release
// are one atomic operation each.
type byteGate struct {
	limit   atomic.Int64 // lowered and raised by the decoded fetches' share (decoded.go)
	used    atomic.Int64
	waiters atomic.Int32
	// onWait, if set, is called when an acquire starts to wait and no other waits: the
	// inbound gate takes back the claims' credit then (inbound.go).
	onWait func()

	mu    sync.Mutex
	queue []*struct{}   // waiters in order; only the first may take bytes
	wake  chan struct{} // closed when bytes are released while someone waits
}

func newByteGate(limit int64) *byteGate {
	g := &byteGate{}
	g.limit.Store(limit)
	return g
}

func (g *byteGate) fits(used, n int64) bool { return used == 0 || used+n <= g.limit.Load() }

// setLimit changes the bound; what is held above a lower bound stays until it is released,
// and waiters are woken when it is raised.
func (g *byteGate) setLimit(limit int64) {
	if g.limit.Swap(limit) < limit && g.waiters.Load() > 0 {
		g.mu.Lock()
		g.wakeLocked()
		g.mu.Unlock()
	}
}

// acquire takes n bytes, waiting for room; false when stop or revoked closed first.
//
// It queues only when the bytes do not fit or others wait. An acquire that queued after
// losing a race for used to another acquirer, with room left, made every acquire behind it
// take the lock until the queue emptied: sarama's feeders, which take the inbound gate for
// every message, then convoyed on it (docs/benchmarks.md, "The inbound gate's convoy").
func (g *byteGate) acquire(n int64, stop, revoked <-chan struct{}) bool {
	if g.tryAcquire(n) {
		return true
	}
	me := &struct{}{}
	if g.waiters.Add(1) == 1 && g.onWait != nil {
		g.onWait()
	}
	defer g.waiters.Add(-1)
	g.mu.Lock()
	g.queue = append(g.queue, me)
	for {
		if u := g.used.Load(); g.queue[0] == me && g.fits(u, n) && g.used.CompareAndSwap(u, u+n) {
			g.leaveLocked(me)
			g.mu.Unlock()
			return true
		}
		if g.wake == nil {
			g.wake = make(chan struct{})
		}
		wake := g.wake
		g.mu.Unlock()
		select {
		case <-wake:
		case <-stop:
			g.giveUp(me)
			return false
		case <-revoked:
			g.giveUp(me)
			return false
		}
		g.mu.Lock()
	}
}

// tryAcquire takes n bytes if they fit now and no one waits for them; it never waits.
func (g *byteGate) tryAcquire(n int64) bool {
	for g.waiters.Load() == 0 {
		u := g.used.Load()
		if !g.fits(u, n) {
			return false
		}
		if g.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
	return false
}

func (g *byteGate) giveUp(me *struct{}) {
	g.mu.Lock()
	g.leaveLocked(me)
	g.mu.Unlock()
}

// leaveLocked takes a waiter out of the queue and wakes the others; g.mu is held.
func (g *byteGate) leaveLocked(me *struct{}) {
	if i := slices.Index(g.queue, me); i >= 0 {
		g.queue = slices.Delete(g.queue, i, i+1)
	}
	g.wakeLocked()
}

func (g *byteGate) wakeLocked() {
	if g.wake != nil {
		close(g.wake)
		g.wake = nil
	}
}

// release gives back n bytes.
func (g *byteGate) release(n int64) {
	if n == 0 {
		return
	}
	g.used.Add(-n)
	if g.waiters.Load() > 0 {
		g.mu.Lock()
		g.wakeLocked()
		g.mu.Unlock()
	}
}

// msgOverhead is what a message costs besides its key, value and headers: the
// ConsumerMessage, the job and the producer's message around it.
const msgOverhead = 512

// copyAbove is the size from which a message's bytes are copied out of the fetch response
// when it is admitted: a large message in flight then holds its own bytes, not the whole
// response it came in (sarama decodes records as slices of the response).
const copyAbove = 16 << 10

// messageSize is what a message is counted for in the budget.
func messageSize(m *sarama.ConsumerMessage) int64 {
	n := len(m.Key) + len(m.Value) + msgOverhead
	for _, h := range m.Headers {
		if h != nil {
			n += len(h.Key) + len(h.Value)
		}
	}
	return int64(n)
}

// detach copies a large message's key, value and headers into one buffer of its own.
func detach(m *sarama.ConsumerMessage, size int64) {
	if size < copyAbove {
		return
	}
	buf := make([]byte, 0, size-msgOverhead)
	take := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	m.Key, m.Value = take(m.Key), take(m.Value)
	for _, h := range m.Headers {
		if h != nil {
			h.Key, h.Value = take(h.Key), take(h.Value)
		}
	}
}
