package lag

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// txnProducer writes to partition 0 of topic in transactions.
func txnProducer(t *testing.T, addrs []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.TransactionalID("lag-test"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// writeTxn writes n records to partition 0 of topic in one transaction, committed or aborted.
func writeTxn(t *testing.T, cl *kgo.Client, topic string, n int, commit bool) {
	t.Helper()
	ctx := context.Background()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r := &kgo.Record{Topic: topic, Partition: 0, Value: []byte(strconv.Itoa(i))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatal(err)
	}
}

// pollPartition0 polls twice (a small lag is checked once it did not move between two polls)
// and returns partition 0 of topic.
func pollPartition0(t *testing.T, r *Reader, addrs []string, topic, group string, readCommitted bool) scaling.Offsets {
	t.Helper()
	var res *Result
	for range 2 {
		var err error
		res, err = r.Poll(context.Background(), Query{Pipeline: "ns/" + group, Conn: Connection{BootstrapServers: addrs},
			Topics: []string{topic}, Group: group, ReadCommitted: readCommitted})
		if err != nil {
			t.Fatal(err)
		}
	}
	return offsetsOf(res)[scaling.TopicPartition{Topic: topic, Partition: 0}]
}

// TestLagReachesZeroOnTransactionalTopic: a group that consumed every record of a topic written
// in transactions commits the offset after the last record, before the last commit marker; its
// lag is 0, not 1. After an aborted transaction at the end, a group reading committed records
// has no lag, one reading uncommitted records has the aborted records as lag.
func TestLagReachesZeroOnTransactionalTopic(t *testing.T) {
	kc := startCluster(t, 1, 1, "tx")
	ctx := context.Background()
	p := txnProducer(t, kc.Addrs)
	writeTxn(t, p, "tx", 5, true) // records 0-4, commit marker at 5
	writeTxn(t, p, "tx", 5, true) // records 6-10, commit marker at 11
	if err := kc.Commit(ctx, "consumed", map[string]map[int32]int64{"tx": {0: 11}}); err != nil {
		t.Fatal(err)
	}
	if err := kc.Commit(ctx, "behind", map[string]map[int32]int64{"tx": {0: 8}}); err != nil {
		t.Fatal(err)
	}
	r := NewReader(Options{Timeout: 5 * time.Second})
	defer r.Close()

	if o := pollPartition0(t, r, kc.Addrs, "tx", "consumed", true); scaling.Lag(o, false).Lag != 0 || o.Newest != 12 {
		t.Errorf("consumed everything: newest %d committed %d, lag %d; want newest 12 and lag 0", o.Newest, o.Committed, scaling.Lag(o, false).Lag)
	}
	if o := pollPartition0(t, r, kc.Addrs, "tx", "behind", true); scaling.Lag(o, false).Lag != 4 {
		t.Errorf("three records behind: newest %d committed %d; want lag 4 (3 records and the marker)", o.Newest, o.Committed)
	}

	writeTxn(t, p, "tx", 3, false) // aborted records 12-14, abort marker at 15
	if o := pollPartition0(t, r, kc.Addrs, "tx", "consumed", true); scaling.Lag(o, false).Lag != 0 {
		t.Errorf("read committed, aborted tail: newest %d committed %d; want lag 0", o.Newest, o.Committed)
	}
	if o := pollPartition0(t, r, kc.Addrs, "tx", "consumed", false); scaling.Lag(o, false).Lag == 0 {
		t.Errorf("read uncommitted, aborted tail: newest %d committed %d; want the aborted records as lag", o.Newest, o.Committed)
	}
}

// TestLagWithOpenTransaction: the records of an open transaction are not lag yet (newest is
// the last stable offset), and a group reading uncommitted records that consumed them has a
// commit past the last stable offset that is not taken for out of range.
func TestLagWithOpenTransaction(t *testing.T) {
	kc := startCluster(t, 1, 1, "open")
	ctx := context.Background()
	if err := kc.Produce(ctx, "open", 4, 0); err != nil { // offsets 0-3, no transaction
		t.Fatal(err)
	}
	p := txnProducer(t, kc.Addrs)
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // offsets 4-6, open
		if err := p.ProduceSync(ctx, &kgo.Record{Topic: "open", Partition: 0, Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := kc.Commit(ctx, "committed", map[string]map[int32]int64{"open": {0: 4}}); err != nil {
		t.Fatal(err)
	}
	if err := kc.Commit(ctx, "uncommitted", map[string]map[int32]int64{"open": {0: 7}}); err != nil {
		t.Fatal(err)
	}
	r := NewReader(Options{Timeout: 5 * time.Second})
	defer r.Close()
	if o := pollPartition0(t, r, kc.Addrs, "open", "committed", true); o.Newest != 4 || scaling.Lag(o, false).Lag != 0 {
		t.Errorf("read committed: newest %d committed %d; want the last stable offset 4 and lag 0", o.Newest, o.Committed)
	}
	o := pollPartition0(t, r, kc.Addrs, "open", "uncommitted", false)
	if pl := scaling.Lag(o, true); pl.Reset || pl.Lag != 0 {
		t.Errorf("read uncommitted past the open transaction: newest %d committed %d, lag %+v; want lag 0 without reset", o.Newest, o.Committed, pl)
	}
	if err := p.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
}
