package lag

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kpipe-io/kpipe/controllers/scaling"
	"github.com/kpipe-io/kpipe/internal/telemetry"
	"github.com/kpipe-io/kpipe/test/kafkatest"
)

// TestPollReadsRecordsAndGroupState: a member that commits a telemetry record with its
// offsets is seen as a Stable group with that member, and the record is decoded; metadata of
// an unknown record version or of another client gives no record. Once the member leaves, the
// group is Empty and the last records stay readable.
func TestPollReadsRecordsAndGroupState(t *testing.T) {
	kc := startCluster(t, 1, 3, "t")
	ctx := context.Background()
	if err := kc.ProduceAll(ctx, "t", 3, 10); err != nil {
		t.Fatal(err)
	}
	rec := telemetry.Record{At: time.UnixMilli(time.Now().UnixMilli()), Rate: 12.5, Busy: 0.5, InFlight: 2,
		OldestInFlight: 3 * time.Second, LastTimestamp: time.UnixMilli(1_700_000_000_000), State: telemetry.StateRetrying, Replica: "pod-a"}
	member, err := kafkatest.JoinGroup(kc.Addrs, "g", "pod-a", "t")
	if err != nil {
		t.Fatal(err)
	}
	for p, md := range map[int32]string{0: telemetry.Encode(rec), 1: "kp2;at=1", 2: "written by another client"} {
		if err := member.Commit(map[string]map[int32]int64{"t": {p: 5}}, md); err != nil {
			t.Fatal(err)
		}
	}

	r := NewReader(Options{Timeout: 5 * time.Second})
	defer r.Close()
	q := Query{Pipeline: "ns/p", Conn: Connection{BootstrapServers: kc.Addrs}, Topics: []string{"t"}, Group: "g"}
	res, err := r.Poll(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if res.Group == nil || res.Group.State != GroupStable || len(res.Group.Members) != 1 || !strings.HasPrefix(res.Group.Members[0], "pod-a@") {
		t.Fatalf("group %+v; want Stable with the one member pod-a", res.Group)
	}
	got := res.Records[scaling.TopicPartition{Topic: "t", Partition: 0}]
	if got == nil || *got != rec {
		t.Fatalf("record of t/0: %+v; want %+v", got, rec)
	}
	if len(res.Records) != 1 {
		t.Fatalf("records %v; want only t/0's (t/1 has version 2, t/2 another client's metadata)", res.Records)
	}

	if err := member.Close(); err != nil {
		t.Fatal(err)
	}
	res, err = r.Poll(ctx, q) // MaxAge 0: read afresh
	if err != nil {
		t.Fatal(err)
	}
	if res.Group == nil || res.Group.State != GroupEmpty || len(res.Group.Members) != 0 {
		t.Fatalf("after the member left: group %+v; want Empty with no members", res.Group)
	}
	if res.Records[scaling.TopicPartition{Topic: "t", Partition: 0}] == nil {
		t.Fatal("the last record is gone once the member left")
	}
}
