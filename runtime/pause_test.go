package runtime

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A message that keeps failing with no dead-letter topic holds its partition's committed
// offset. In Unordered (and Key) ordering the partition's later messages go on and finish,
// and each stays tracked behind the one that did not finish: without a bound a poison message
// made the replica's memory grow with the partition's traffic until the pod was killed,
// restarted at the poison message and grew again. The partition's fetching pauses instead once
// maxUncommitted offsets wait, the other partition goes on, and nothing is committed past the
// poison message; when it finally succeeds the partition resumes and every message is handled.
func TestPoisonMessagePausesOnlyItsPartition(t *testing.T) {
	// keys 2: every message of partition 0 is of one key, the order does not matter.
	poisonHoldsUpOnlyItsPartition(t, poisonCase{ordering: "Unordered", buffer: 16, keys: 2, bound: 500, minStopped: 500})
}

// In Key ordering with many keys the poison message's key waits in its lane (20 messages,
// within the partition's share of the pool), the partition's other keys go on, and the bound
// on tracked offsets pauses it: 1 000 keys a partition, the bound at its least, twice the pool's
// slots.
func TestPoisonMessageInKeyOrderingPausesOnlyItsPartition(t *testing.T) {
	poisonHoldsUpOnlyItsPartition(t, poisonCase{ordering: "Key", buffer: 256, keys: 2000, bound: 2 * (256 + 4), minStopped: 256})
}

// In Partition ordering the messages after the poison message wait in its partition's lane,
// each holding a slot of the pool: they filled it, and the other partition of the replica did
// not handle a single message. The claim now holds them back past the partition's share.
func TestPoisonMessageInPartitionOrderingHoldsUpOnlyItsPartition(t *testing.T) {
	poisonHoldsUpOnlyItsPartition(t, poisonCase{ordering: "Partition", buffer: 256, keys: 2, bound: 1 << 16, minStopped: poisonOffset})
}

// The same in Key ordering for a busy key: every message of partition 0 is of the poison
// message's key.
func TestPoisonKeyHoldsUpOnlyItsPartition(t *testing.T) {
	poisonHoldsUpOnlyItsPartition(t, poisonCase{ordering: "Key", buffer: 256, keys: 2, bound: 1 << 16, minStopped: poisonOffset})
}

// poisonCase is a pool, the input's keys (2: every message of a partition is of one key) and
// a bound of tracked offsets; minStopped is the least the poison message's partition handles
// before it stops.
type poisonCase struct {
	ordering            string
	buffer, keys, bound int
	minStopped          int64
}

const (
	poisonValue  = 10 // on partition 0 (even values go to partition 0)
	poisonOffset = 5  // its offset: the 6th message of partition 0
)

// poisonHoldsUpOnlyItsPartition consumes 20 000 messages on each of 2 partitions with the
// value 10 failing until the test lets it succeed, with no dead-letter topic.
func poisonHoldsUpOnlyItsPartition(t *testing.T, c poisonCase) {
	g := NewWithT(t)
	const n = 40_000 // 20 000 on each partition
	tc := newTestCluster(t, map[string]int32{"in": 2})
	// In record batches of 250 a partition: a fetch returns whole batches, and one batch of
	// the partition's 20 000 (the test producer's batches may hold 4 MiB) would deliver all of
	// it before any pause.
	for from := 0; from < n; from += 500 {
		tc.produce(input{topic: "in", n: n, keys: c.keys, partitions: 2}, from, from+500)
	}

	var failing atomic.Bool
	failing.Store(true)
	var handled [2]atomic.Int64
	order := newKeyOrder()
	h := HandlerFunc(func(_ context.Context, m *Message) error {
		v, _ := strconv.Atoi(string(m.Value))
		if v == poisonValue && failing.Load() {
			return errors.New("poison")
		}
		order.see(m.Partition, string(m.Key), v)
		handled[m.Partition].Add(1)
		return nil
	})
	spec := tc.baseSpec("poison")
	spec["processor"] = map[string]any{"handler": map[string]any{"name": "test"}}
	spec["template"] = map[string]any{"image": "example.com/custom:1"}
	spec["pool"] = map[string]any{"size": 4, "buffer": c.buffer, "ordering": c.ordering}
	// The smallest budget: fetches of 64 KiB a partition (its fetch share over 2 partitions),
	// so what sarama had fetched when the partition paused is a few thousand of these small
	// records, not the whole partition.
	r := start(t, specJSON(t, spec), WithHandler(h), WithMaxUncommitted(c.bound), WithMemoryBudget(minBudget))

	g.Eventually(handled[1].Load, time.Minute, 20*time.Millisecond).To(BeEquivalentTo(n/2), "the other partition is not held up")
	// Partition 1 may have paused for a moment too: with 4 workers on a busy machine, the
	// bound's worth of messages can finish while a worker waits to run the oldest one. It
	// resumed, or it would not have finished.
	g.Eventually(func() float64 { return testutil.ToFloat64(r.p.metrics.paused) }, 10*time.Second).To(BeEquivalentTo(1))
	stopped := handled[0].Load()
	g.Consistently(handled[0].Load, time.Second, 50*time.Millisecond).To(Equal(stopped), "the paused partition handles nothing more")
	// Stopped at the bound, plus what sarama had fetched and delivered before the pause (a
	// fetch and its channel of 256): not the partition's 20 000.
	t.Logf("partition 0 stopped after %d of its %d messages", stopped, n/2)
	g.Expect(stopped).To(BeNumerically(">=", c.minStopped))
	g.Expect(stopped).To(BeNumerically("<", n/4))
	g.Eventually(func() int64 { return tc.committed("poison", "in", 2)[0] }, 10*time.Second).To(BeEquivalentTo(poisonOffset),
		"partition 0 commits up to the poison message, never past it")

	failing.Store(false)
	tc.expectCommittedAtEnd(g, "poison", "in")
	g.Expect(handled[0].Load()).To(BeEquivalentTo(n/2), "once the poison message succeeds every message of its partition is handled")
	g.Expect(testutil.ToFloat64(r.p.metrics.paused)).To(BeZero())
	if c.ordering != "Unordered" {
		g.Expect(order.violations.Load()).To(BeZero(), "a key's messages handled out of order")
	}
}

// keyOrder counts the messages handled before an earlier one of their key.
type keyOrder struct {
	mu         sync.Mutex
	last       map[string]int
	violations atomic.Int64
}

func newKeyOrder() *keyOrder { return &keyOrder{last: map[string]int{}} }

func (o *keyOrder) see(partition int32, key string, v int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := strconv.Itoa(int(partition)) + "/" + key
	if last, ok := o.last[k]; ok && v < last {
		o.violations.Add(1)
	}
	o.last[k] = v
}

func TestMaxUncommittedMustBePositive(t *testing.T) {
	spec := (&testCluster{addrs: []string{"localhost:9092"}}).baseSpec("g")
	cfg, err := LoadConfig(specJSON(t, spec), SecretDirs{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, -1} {
		if _, err := New(cfg, WithMaxUncommitted(n)); err == nil || !strings.Contains(err.Error(), "WithMaxUncommitted") {
			t.Errorf("WithMaxUncommitted(%d): err %v, want one naming WithMaxUncommitted", n, err)
		}
	}
	p, err := New(cfg, WithMaxUncommitted(10))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.set.maxUncommitted; got != 2*(16+8) {
		t.Errorf("maxUncommitted %d with WithMaxUncommitted(10), buffer 16 and 8 workers; want twice the pool's slots, 48", got)
	}
}

// recordingPauser counts what a partition asked sarama's consumer group.
type recordingPauser struct {
	paused, resumed atomic.Int32
}

func (p *recordingPauser) Pause(map[string][]int32)  { p.paused.Add(1) }
func (p *recordingPauser) Resume(map[string][]int32) { p.resumed.Add(1) }

// A claim that starts holding back with messages of an earlier hold still not admitted
// pauses as soon as more arrive: the mark is a floor, not a count to reach exactly, or the
// partition would keep being fetched, and held back, for ever.
func TestHoldBackPausesWithMessagesLeftFromAnEarlierHold(t *testing.T) {
	g := NewWithT(t)
	m := newMetrics("t", "t")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := &claims{pool: newPool("Partition", 16, 4, 1<<20), log: log}
	h.claimed.Store(1) // share: 20 slots / 2 = 10
	pt := newPartition(context.Background(), nil, nil, ackClaim{id: 0}, log, m)
	rp := &recordingPauser{}
	pt.fetch = fetchPause{group: rp, gauge: m.paused}
	pt.waiting.Store(50)
	in := newInbound(1<<20, 1, make(chan struct{}))
	msgs := make(chan *sarama.ConsumerMessage, 1)
	src := source{msgs: msgs, in: in, ic: in.open(topicPartition{"t", 0})}
	for i := range holdBeforePause + 44 {
		src.held.push(&sarama.ConsumerMessage{Topic: "t", Offset: int64(i)})
	}
	done := make(chan bool)
	go func() { done <- h.holdBack(context.Background(), pt, &src) }()
	msgs <- &sarama.ConsumerMessage{Topic: "t", Offset: 1000}
	g.Eventually(rp.paused.Load).To(BeNumerically(">=", 1), "paused with the earlier hold's messages and one more held")
	g.Expect(testutil.ToFloat64(m.paused)).To(BeEquivalentTo(1))

	pt.waiting.Store(6)
	pt.leftLanes(1) // a worker takes the next one out: 5 wait, half the share
	g.Eventually(done).Should(Receive(BeTrue()))
	g.Expect(rp.resumed.Load()).To(BeEquivalentTo(1))
	g.Expect(testutil.ToFloat64(m.paused)).To(BeZero())
	g.Expect(src.held.len()).To(Equal(holdBeforePause+45), "nothing held back is dropped")
}

// A claim that pauses again and again logs its first pause, then at most one line a minute
// with the pauses it did not log: in Key ordering at full speed a claim pauses hundreds of
// times a second, and a line each drowned the log. Every pause still pauses.
func TestHoldBackPauseLogIsRateLimited(t *testing.T) {
	g := NewWithT(t)
	m := newMetrics("t", "t")
	var lines bytes.Buffer // written by holdBack, read once it returned
	log := slog.New(slog.NewTextHandler(&lines, nil))
	h := &claims{pool: newPool("Partition", 16, 4, 1<<20), log: log}
	h.claimed.Store(1) // share: 20 slots / 2 = 10
	pt := newPartition(context.Background(), nil, nil, ackClaim{id: 0}, log, m)
	rp := &recordingPauser{}
	pt.fetch = fetchPause{group: rp, gauge: m.paused}
	in := newInbound(1<<20, 1, make(chan struct{}))
	msgs := make(chan *sarama.ConsumerMessage, 1)
	src := source{msgs: msgs, in: in, ic: in.open(topicPartition{"t", 0})}
	for i := range holdBeforePause {
		src.held.push(&sarama.ConsumerMessage{Topic: "t", Offset: int64(i)})
	}
	pauses := func() int { return strings.Count(lines.String(), "partition paused") }
	holdOnce := func(offset int64) { // one hold: paused by the next message, resumed by a worker
		t.Helper()
		before := rp.paused.Load()
		pt.waiting.Store(50)
		done := make(chan bool)
		go func() { done <- h.holdBack(context.Background(), pt, &src) }()
		msgs <- &sarama.ConsumerMessage{Topic: "t", Offset: offset}
		g.Eventually(rp.paused.Load).Should(BeNumerically(">", before), "paused")
		pt.waiting.Store(6)
		pt.leftLanes(1)
		g.Eventually(done).Should(Receive(BeTrue()))
	}

	for i := range 5 {
		holdOnce(int64(1000 + i))
	}
	g.Expect(rp.paused.Load()).To(BeEquivalentTo(5))
	g.Expect(rp.resumed.Load()).To(BeEquivalentTo(5))
	g.Expect(pauses()).To(Equal(1), "the claim's first pause is logged, the next four within the minute are not")
	g.Expect(lines.String()).To(ContainSubstring("pausesNotLogged=0"))

	pt.holdLog.last = pt.holdLog.last.Add(-pauseLogEvery) // a minute later
	holdOnce(2000)
	g.Expect(pauses()).To(Equal(2))
	g.Expect(lines.String()).To(ContainSubstring("pausesNotLogged=4"))
}

// A claim holding back takes what sarama already delivered in one go: every message in the
// channel, in order, their bytes given back to the inbound gate that sarama's feeders share,
// and the channel's close reported.
func TestHoldTakesWhatSaramaDeliveredAndGivesItsBytesBack(t *testing.T) {
	g := NewWithT(t)
	in := newInbound(1<<20, 1, make(chan struct{}))
	msgs := make(chan *sarama.ConsumerMessage, 8)
	src := source{msgs: msgs, in: in, ic: in.open(topicPartition{"t", 0})}
	delivered := func(offset int64) *sarama.ConsumerMessage {
		m := &sarama.ConsumerMessage{Topic: "t", Offset: offset, Value: make([]byte, 100)}
		in.take(in.claim(topicPartition{m.Topic, m.Partition}), messageSize(m)) // as sarama's feeder does before the channel
		return m
	}
	first := delivered(0)
	for i := range int64(4) {
		msgs <- delivered(i + 1)
	}
	g.Expect(in.owedBytes()).To(Equal(5 * messageSize(first)))

	g.Expect(src.hold(first)).To(BeTrue())
	g.Expect(src.held.len()).To(Equal(5), "the one received and the 4 already in the channel")
	g.Expect(msgs).To(BeEmpty())
	g.Expect(in.owedBytes()).To(BeZero(), "held messages' bytes go back to the gate")
	for i := range int64(5) {
		g.Expect(src.held.pop().Offset).To(Equal(i), "in the partition's order")
	}

	close(msgs)
	g.Expect(src.hold(delivered(5))).To(BeFalse(), "sarama closed the channel")
	g.Expect(src.held.len()).To(Equal(1))
	g.Expect(in.owedBytes()).To(BeZero())
}

// owedBytes is what the gate holds for messages delivered and not admitted: its bytes taken
// less the claims' credit.
func (in *inbound) owedBytes() int64 {
	n := in.gate.used.Load()
	in.claims.Range(func(_, c any) bool {
		n -= c.(*inboundClaim).credit.Load()
		return true
	})
	return n
}
