package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	. "github.com/onsi/gomega"
	"github.com/twmb/franz-go/pkg/kgo"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// fakeCgroup writes a cgroup hierarchy with the given files under a temporary root.
func fakeCgroup(t *testing.T, self string, files map[string]string) cgroupFiles {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	selfFile := filepath.Join(root, "self-cgroup")
	if err := os.WriteFile(selfFile, []byte(self), 0o600); err != nil {
		t.Fatal(err)
	}
	return cgroupFiles{root: root, self: selfFile}
}

func TestMemoryBudgetFromCgroup(t *testing.T) {
	const mib = 1 << 20
	noEnv := func(string) string { return "" }
	for _, tt := range []struct {
		name   string
		self   string
		files  map[string]string
		limit  int64
		budget int64
	}{
		{"v2 own cgroup", "0::/kubepods/pod1/c1\n", map[string]string{"kubepods/pod1/c1/memory.max": "536870912\n"}, 512 * mib, 256 * mib},
		{"v2 namespaced root", "0::/\n", map[string]string{"memory.max": "1073741824\n"}, 1024 * mib, 512 * mib},
		{"v2 no limit", "0::/\n", map[string]string{"memory.max": "max\n"}, 0, defaultBudget},
		{"v1 own cgroup", "4:memory:/kpipe\n0::/\n", map[string]string{"memory/kpipe/memory.limit_in_bytes": "536870912"}, 512 * mib, 256 * mib},
		{"v1 cpu,memory joined", "3:cpu,memory:/x\n", map[string]string{"memory/x/memory.limit_in_bytes": "268435456"}, 256 * mib, 128 * mib},
		{"v1 unlimited", "4:memory:/\n", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712"}, 0, defaultBudget},
		{"nothing", "", nil, 0, defaultBudget},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			b, err := resolveMemoryBudget(0, noEnv, fakeCgroup(t, tt.self, tt.files))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(b.limit).To(Equal(tt.limit))
			g.Expect(b.total).To(Equal(tt.budget))
			g.Expect(b.fetch + b.inbound + b.pool + b.window).To(Equal(b.total))
			if tt.limit > 0 {
				g.Expect(b.goMemLimit()).To(Equal(tt.limit * 85 / 100))
			}
		})
	}
}

func TestMemoryBudgetOverrides(t *testing.T) {
	g := NewWithT(t)
	cg := fakeCgroup(t, "0::/\n", map[string]string{"memory.max": "536870912"})
	env := func(v string) func(string) string {
		return func(name string) string {
			if name == EnvMemoryBudget {
				return v
			}
			return ""
		}
	}
	b, err := resolveMemoryBudget(0, env("100Mi"), cg)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b.total).To(Equal(int64(100 << 20)))
	g.Expect(b.source).To(Equal(EnvMemoryBudget))
	g.Expect(b.goMemLimit()).To(Equal(int64(512<<20)*85/100), "GOMEMLIMIT follows the container's limit")

	b, err = resolveMemoryBudget(64<<20, env("100Mi"), cg)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b.total).To(Equal(int64(64<<20)), "the spec wins over the environment")

	_, err = resolveMemoryBudget(0, env("lots"), cg)
	g.Expect(err).To(MatchError(ContainSubstring(EnvMemoryBudget)))

	none := fakeCgroup(t, "", nil)
	b, err = resolveMemoryBudget(0, env("200Mi"), none)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b.goMemLimit()).To(Equal(int64(400<<20)*85/100), "without a limit, GOMEMLIMIT follows the budget")

	g.Expect(newMemoryBudget(256<<20, "", 0).partitionFetch(12, 1)).To(Equal(int32(maxPartitionFetch)))
	g.Expect(newMemoryBudget(16<<20, "", 0).partitionFetch(12, 1)).To(Equal(int32(2 << 20 / 12)))
	g.Expect(newMemoryBudget(1<<20, "", 0).partitionFetch(100, 1)).To(Equal(int32(minPartitionFetch)))
}

// TestPoolBoundsBytes: the pool admits messages while their bytes fit, a message larger
// than its bytes alone once it is empty, and serves waiting consumers in turn.
func TestPoolBoundsBytes(t *testing.T) {
	g := NewWithT(t)
	pl := newPool(kpipev1.OrderingUnordered, 100, 1, 8000)
	ctx := context.Background()
	n, room := pl.acquireUpTo(ctx, 10, 600)
	g.Expect(n).To(Equal(10))
	g.Expect(room).To(Equal(int64(1000)), "room for the first message and up to an eighth of the pool")
	pl.release(7, room-3*600) // three messages of 600 bytes admitted

	big := make(chan int64, 1)
	go func() {
		_, r := pl.acquireUpTo(ctx, 1, 20000) // larger than the pool
		big <- r
	}()
	g.Consistently(big).WithTimeout(100 * time.Millisecond).ShouldNot(Receive())
	small := make(chan int, 1)
	go func() {
		n, _ := pl.acquireUpTo(ctx, 1, 100)
		small <- n
	}()
	g.Consistently(small).WithTimeout(100*time.Millisecond).ShouldNot(Receive(), "a later consumer waits behind the large message")
	for range 3 {
		pl.done(nil, 600)
	}
	g.Eventually(big).Should(Receive(Equal(int64(20000))), "the large message is admitted once the pool is empty")
	g.Consistently(small).WithTimeout(100*time.Millisecond).ShouldNot(Receive(), "nothing is admitted next to the large message")
	pl.done(nil, 20000)
	g.Eventually(small).Should(Receive(Equal(1)))
}

func TestByteGate(t *testing.T) {
	g := NewWithT(t)
	gate := newByteGate(1000)
	g.Expect(gate.acquire(600, nil, nil)).To(BeTrue())
	g.Expect(gate.acquire(400, nil, nil)).To(BeTrue())
	stop := make(chan struct{})
	got := make(chan bool, 2)
	go func() { got <- gate.acquire(5000, stop, nil) }() // oversized: goes alone
	g.Consistently(got).WithTimeout(50 * time.Millisecond).ShouldNot(Receive())
	gate.release(600)
	g.Consistently(got).WithTimeout(50 * time.Millisecond).ShouldNot(Receive())
	gate.release(400)
	g.Eventually(got).Should(Receive(BeTrue()))
	go func() { got <- gate.acquire(1, stop, nil) }()
	g.Consistently(got).WithTimeout(50 * time.Millisecond).ShouldNot(Receive())
	close(stop)
	g.Eventually(got).Should(Receive(BeFalse()), "a waiter gives up when told to")
	gate.release(5000)
	g.Expect(gate.acquire(1000, nil, nil)).To(BeTrue())
	g.Expect(gate.used.Load()).To(Equal(int64(1000)))
}

// TestByteGateWithRoomNeverQueues: acquirers that race for the same counter while the gate
// has room retry rather than queue. Once one queued, every acquire behind it took the gate's
// lock until the queue emptied: sarama's feeders, which take the inbound gate for every
// message, then spent most of their time on that lock (docs/benchmarks.md, "The inbound
// gate's convoy").
func TestByteGateWithRoomNeverQueues(t *testing.T) {
	gate := newByteGate(1 << 40)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100_000 {
				gate.acquire(100, nil, nil)
				gate.release(100)
			}
		})
	}
	wg.Wait()
	g := NewWithT(t)
	g.Expect(gate.used.Load()).To(BeZero())
	g.Expect(gate.queue).To(HaveCap(0), "an acquire with room joined the queue of waiters")
}

// TestDetachCopiesLargeMessages: a large message's bytes no longer share the array of the
// fetch response; a small one's are left alone.
func TestDetachCopiesLargeMessages(t *testing.T) {
	g := NewWithT(t)
	resp := make([]byte, 3*copyAbove)
	m := &sarama.ConsumerMessage{Key: resp[:10], Value: resp[10 : 2*copyAbove], Headers: []*sarama.RecordHeader{{Key: resp[2*copyAbove : 2*copyAbove+1], Value: resp[2*copyAbove+1 : 2*copyAbove+5]}}}
	size := messageSize(m)
	g.Expect(size).To(Equal(int64(2*copyAbove + 5 + msgOverhead)))
	detach(m, size)
	resp[10], resp[0] = 42, 42
	g.Expect(m.Value[0]).To(BeZero())
	g.Expect(m.Key[0]).To(BeZero())
	g.Expect(m.Value).To(HaveLen(2*copyAbove - 10))
	g.Expect(m.Headers[0].Value).To(HaveLen(4))

	small := &sarama.ConsumerMessage{Value: resp[:100]}
	detach(small, messageSize(small))
	g.Expect(small.Value[0]).To(Equal(byte(42)))
}

// TestOversizedMessageGoesThrough forwards, with a budget of 1 MiB, small messages and one
// of 900 kB: larger than every share of the budget (fetch, inbound, pool and producer
// window). It goes through on its own; nothing is lost and every offset is committed.
func TestOversizedMessageGoesThrough(t *testing.T) {
	g := NewWithT(t)
	const n, big = 600, 300
	tc := newTestCluster(t, map[string]int32{"in": 3, "out": 3})
	in := input{topic: "in", n: n, keys: 30, partitions: 3}
	tc.produce(in, 0, big)
	tc.produceValue(in, big, strings.Repeat("0", 900_000)+strconv.Itoa(big))
	tc.produce(in, big+1, n)

	r := start(t, specJSON(t, tc.baseSpec("oversized")), WithMemoryBudget(1<<20))
	g.Expect(r.p.set.memory.pool).To(BeNumerically("<", 900_000))
	out := tc.readAll("out", n, time.Minute)
	tc.expectCommittedAtEnd(g, "oversized", "in")
	r.stop(t)
	checkAllPresent(t, out, n)
}

// produceValue writes record i of the input with the given value.
func (tc *testCluster) produceValue(in input, i int, value string) {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := &kgo.Record{Topic: in.topic, Partition: in.partition(i), Key: []byte(in.key(i)), Value: []byte(value),
		Headers: []kgo.RecordHeader{{Key: "seq", Value: []byte(strconv.Itoa(i))}}}
	if err := tc.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		tc.t.Fatalf("produce record %d: %v", i, err)
	}
}

// TestSmallBudgetManyPartitions drains 12 partitions of 48 KiB messages (18 MiB) with a
// budget of 2 MiB: every stage waits for bytes over and over, and nothing is lost.
func TestSmallBudgetManyPartitions(t *testing.T) {
	g := NewWithT(t)
	const n = 384
	tc := newTestCluster(t, map[string]int32{"in": 12, "out": 12})
	in := input{topic: "in", n: n, keys: 48, partitions: 12}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { tc.produceValue(in, i, strings.Repeat("0", 48<<10)+strconv.Itoa(i)) })
	}
	wg.Wait()
	r := start(t, specJSON(t, tc.baseSpec("small-budget")), WithMemoryBudget(2<<20))
	out := tc.readAll("out", n, time.Minute)
	tc.expectCommittedAtEnd(g, "small-budget", "in")
	r.stop(t)
	checkAllPresent(t, out, n)
}

// TestMemoryBudgetFromSpec: spec.pool.memoryBudget sets the budget; WithMemoryBudget, for
// a Go program embedding the runtime, wins over it.
func TestMemoryBudgetFromSpec(t *testing.T) {
	g := NewWithT(t)
	spec := []byte(`{"kafka":{"bootstrapServers":["localhost:9092"]},"topics":["in"],"group":"g",` +
		`"pool":{"memoryBudget":"64Mi"},"processor":{"forward":{"topic":"out"}}}`)
	cfg, err := LoadConfig(spec, SecretDirs{})
	g.Expect(err).NotTo(HaveOccurred())
	p, err := New(cfg, WithLogger(testLogger(t)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(p.set.memory.total).To(Equal(int64(64 << 20)))
	g.Expect(p.set.memory.source).To(Equal("spec"))
	p, err = New(cfg, WithLogger(testLogger(t)), WithMemoryBudget(8<<20))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(p.set.memory.total).To(Equal(int64(8 << 20)))
}
