package runtime

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A message that keeps failing with no dead-letter topic holds its partition's committed
// offset, while in Unordered (and Key) ordering the partition's later messages go on and
// finish. Each of them stays tracked behind the one that did not finish, so without a bound
// a poison message made the replica's memory grow with the partition's traffic until the pod
// was killed, restarted at the poison message and grew again. The partition's fetching pauses
// instead once maxUncommitted offsets wait, the other partitions go on, and nothing is
// committed past the poison message; when it finally succeeds the partition resumes and
// every message is handled.
func TestPoisonMessagePausesOnlyItsPartition(t *testing.T) {
	// keys 2: every message of partition 0 is of one key, the order does not matter.
	poisonPausesPartition(t, "Unordered", 16, 2, 500)
}

// In Key ordering the poison message's key waits in its lane, holding pool slots, and the
// partition's other keys go on: 1 000 keys a partition, a buffer of 256 so that the poison
// key's 20 messages do not fill the pool, and the bound at its least, twice the pool's slots.
func TestPoisonMessageInKeyOrderingPausesOnlyItsPartition(t *testing.T) {
	poisonPausesPartition(t, "Key", 256, 2000, 2*(256+4))
}

// poisonPausesPartition consumes 20 000 messages on each of 2 partitions with the value 10
// (partition 0, offset 5) failing until the test lets it succeed, no dead-letter topic, and
// a bound of bound tracked offsets.
func poisonPausesPartition(t *testing.T, ordering string, buffer, keys, bound int) {
	g := NewWithT(t)
	const (
		n      = 40_000 // 20 000 on each partition
		poison = 10     // the 6th message of partition 0 (even values go to partition 0)
	)
	tc := newTestCluster(t, map[string]int32{"in": 2})
	tc.produce(input{topic: "in", n: n, keys: keys, partitions: 2}, 0, n)

	var failing atomic.Bool
	failing.Store(true)
	var handled [2]atomic.Int64
	h := HandlerFunc(func(_ context.Context, m *Message) error {
		if v, _ := strconv.Atoi(string(m.Value)); v == poison && failing.Load() {
			return errors.New("poison")
		}
		handled[m.Partition].Add(1)
		return nil
	})
	spec := tc.baseSpec("poison")
	spec["processor"] = map[string]any{"handler": map[string]any{"name": "test"}}
	spec["template"] = map[string]any{"image": "example.com/custom:1"}
	spec["pool"] = map[string]any{"size": 4, "buffer": buffer, "ordering": ordering}
	// The smallest budget: fetches of 64 KiB a partition (its fetch share over 2 partitions),
	// so what sarama had fetched when the partition paused is a few thousand of these small
	// records, not the whole partition.
	r := start(t, specJSON(t, spec), WithHandler(h), WithMaxUncommitted(bound), WithMemoryBudget(minBudget))

	g.Eventually(handled[1].Load, time.Minute, 20*time.Millisecond).To(BeEquivalentTo(n/2), "the other partition is not held up")
	// Partition 1 may have paused for a moment too: with 4 workers on a busy machine, the
	// bound's worth of messages can finish while a worker waits to run the oldest one. It
	// resumed, or it would not have finished.
	g.Eventually(func() float64 { return testutil.ToFloat64(r.p.metrics.paused) }, 10*time.Second).To(BeEquivalentTo(1))
	stopped := handled[0].Load()
	g.Consistently(handled[0].Load, time.Second, 50*time.Millisecond).To(Equal(stopped), "the paused partition consumes nothing more")
	// Paused at the bound, plus what sarama had fetched and delivered before (a fetch and its
	// channel of 256): not the partition's 20 000.
	g.Expect(stopped).To(BeNumerically(">=", bound/2))
	g.Expect(stopped).To(BeNumerically("<", n/4))
	g.Eventually(func() int64 { return tc.committed("poison", "in", 2)[0] }, 10*time.Second).To(BeEquivalentTo(poison/2),
		"partition 0 commits up to the poison message, never past it")

	failing.Store(false)
	tc.expectCommittedAtEnd(g, "poison", "in")
	g.Expect(handled[0].Load()).To(BeEquivalentTo(n/2), "once the poison message succeeds every message of its partition is handled")
	g.Expect(testutil.ToFloat64(r.p.metrics.paused)).To(BeZero())
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
