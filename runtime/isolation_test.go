package runtime

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/twmb/franz-go/pkg/kgo"
)

// writeTransactions writes three transactions to partition 0 of topic: values 0-9 committed,
// 100-109 aborted, 10-19 committed.
func writeTransactions(t *testing.T, tc *testCluster, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(tc.addrs...), kgo.TransactionalID("upstream"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	for _, txn := range []struct {
		from   int
		commit bool
	}{{0, true}, {100, false}, {10, true}} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for v := txn.from; v < txn.from+10; v++ {
			r := &kgo.Record{Topic: topic, Partition: 0, Value: []byte(strconv.Itoa(v))}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(txn.commit)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIsolationLevel: a pipeline reading committed records never handles the records of an
// aborted upstream transaction; one reading uncommitted records does.
func TestIsolationLevel(t *testing.T) {
	for _, tt := range []struct {
		level       string
		wantAborted bool
	}{{"ReadCommitted", false}, {"ReadUncommitted", true}} {
		t.Run(tt.level, func(t *testing.T) {
			g := NewWithT(t)
			tc := newTestCluster(t, map[string]int32{"in": 1, "dlq": 1})
			writeTransactions(t, tc, "in")
			var (
				mu      sync.Mutex
				handled = map[int]int{}
			)
			h := HandlerFunc(func(_ context.Context, m *Message) error {
				v, _ := strconv.Atoi(string(m.Value))
				mu.Lock()
				handled[v]++
				mu.Unlock()
				return nil
			})
			spec := tc.handlerSpec("iso-" + tt.level)
			spec["kafka"] = map[string]any{"bootstrapServers": tc.addrs, "isolationLevel": tt.level}
			// In offset order: once value 19, the last record, was handled, so was every record
			// before it. (The group's commit stops before the last commit marker: the end of the
			// log is never its committed offset.)
			spec["pool"] = map[string]any{"size": 2, "ordering": "Partition"}
			r := start(t, specJSON(t, spec), WithHandler(h))
			g.Eventually(func() int { mu.Lock(); defer mu.Unlock(); return handled[19] }).WithTimeout(time.Minute).Should(Equal(1))
			r.stop(t)
			mu.Lock()
			defer mu.Unlock()
			for v := range 20 {
				g.Expect(handled).To(HaveKeyWithValue(v, 1), "committed value %d", v)
			}
			aborted := 0
			for v := 100; v < 110; v++ {
				aborted += handled[v]
			}
			if tt.wantAborted {
				g.Expect(aborted).To(Equal(10), "reading uncommitted records handles the aborted ones")
			} else {
				g.Expect(aborted).To(BeZero(), "records of the aborted transaction were handled")
			}
		})
	}
}
