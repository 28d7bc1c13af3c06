package lag

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/kpipe-io/kpipe/controllers/scaling"
	"github.com/kpipe-io/kpipe/test/kafkatest"
)

// offsetFetches records the OffsetFetch requests a kfake cluster handles: how many, their
// versions, and how many groups each carried.
type offsetFetches struct {
	mu       sync.Mutex
	requests int
	versions map[int16]int
	groups   int
}

func (o *offsetFetches) watch(kc *kafkatest.Cluster) {
	kc.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		if r, ok := req.(*kmsg.OffsetFetchRequest); ok {
			o.mu.Lock()
			o.requests++
			o.versions[r.Version]++
			o.groups += max(len(r.Groups), 1)
			o.mu.Unlock()
		}
		return nil, nil, false
	})
}

func (o *offsetFetches) take() (requests, groups int, versions map[int16]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	requests, groups, versions = o.requests, o.groups, o.versions
	o.requests, o.groups, o.versions = 0, 0, map[int16]int{}
	return requests, groups, versions
}

// pollGroups starts a cluster, commits offset i+1 on partition 0 for group gi, and polls
// the pipelines of the groups twice: once to register them (each new group is fetched on
// its own), then after forceStale, when the first poll fetches every group at once.
func pollGroups(t *testing.T, groups int, opts ...kfake.Opt) (*offsetFetches, *Reader, []Query, *kafkatest.Cluster) {
	ctx := context.Background()
	kc, err := kafkatest.StartWith(3, 2, []string{"t"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	if err := kc.Produce(ctx, "t", 100, 0); err != nil {
		t.Fatal(err)
	}
	var qs []Query
	for i := range groups {
		g := fmt.Sprintf("g%d", i)
		if err := kc.Commit(ctx, g, map[string]map[int32]int64{"t": {0: int64(i + 1)}}); err != nil {
			t.Fatal(err)
		}
		qs = append(qs, Query{Pipeline: "ns/" + g, Conn: Connection{BootstrapServers: kc.Addrs}, Topics: []string{"t"}, Group: g, MaxAge: time.Minute})
	}
	fetches := &offsetFetches{versions: map[int16]int{}}
	fetches.watch(kc)
	r := NewReader(Options{Timeout: 5 * time.Second})
	t.Cleanup(r.Close)
	for _, q := range qs {
		if _, err := r.Poll(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	r.forceStale()
	fetches.take()
	return fetches, r, qs, kc
}

// checkCommitted polls every query and checks that group gi sees committed offset i+1 on
// partition 0 and none on partition 1.
func checkCommitted(t *testing.T, r *Reader, qs []Query) {
	t.Helper()
	for i, q := range qs {
		res, err := r.Poll(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		o := offsetsOf(res)
		p0, p1 := o[scaling.TopicPartition{Topic: "t", Partition: 0}], o[scaling.TopicPartition{Topic: "t", Partition: 1}]
		if p0.Committed != int64(i+1) || p1.Committed != -1 {
			t.Fatalf("%s: committed %d and %d, want %d and -1", q.Group, p0.Committed, p1.Committed, i+1)
		}
	}
}

// TestOffsetFetchBatchesGroups: after the first poll of each pipeline, one OffsetFetch
// (version 8) per group coordinator carries every group of the cluster, and each pipeline
// reads its own group's offsets from it. kfake answers version 8 with several groups, and
// checks each group's coordinator as Kafka does.
func TestOffsetFetchBatchesGroups(t *testing.T) {
	fetches, r, qs, _ := pollGroups(t, 30)
	checkCommitted(t, r, qs)
	requests, groups, versions := fetches.take()
	if requests < 1 || requests > 3 || groups != 30 || versions[8] != requests {
		t.Fatalf("%d OffsetFetch requests (versions %v) for %d groups; want one version-8 request per coordinator (at most 3) carrying the 30 groups",
			requests, versions, groups)
	}
}

// TestOffsetFetchPerGroupBeforeKafka3: a cluster whose newest OffsetFetch is version 7
// (Kafka 2.8) gets one request per group, with the same offsets.
func TestOffsetFetchPerGroupBeforeKafka3(t *testing.T) {
	fetches, r, qs, _ := pollGroups(t, 12, kfake.MaxVersions(kversion.V2_8_0()))
	checkCommitted(t, r, qs)
	requests, groups, versions := fetches.take()
	if requests != 12 || groups != 12 || versions[8] != 0 {
		t.Fatalf("%d OffsetFetch requests (versions %v) for %d groups; want 12 below version 8", requests, versions, groups)
	}
}

// TestGroupErrorStaysWithGroup: a group the cluster refuses (not authorized) fails only the
// pipeline reading it, whether fetched on its own or in a request with the other groups.
func TestGroupErrorStaysWithGroup(t *testing.T) {
	ctx := context.Background()
	fetches, r, qs, kc := pollGroups(t, 6)
	kc.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetFetch}, Group: "bad", Err: kerr.GroupAuthorizationFailed, Count: -1})
	bad := Query{Pipeline: "ns/bad", Conn: qs[0].Conn, Topics: []string{"t"}, Group: "bad", MaxAge: time.Minute}
	for round := range 2 {
		if _, err := r.Poll(ctx, bad); err == nil || !strings.Contains(err.Error(), `group "bad"`) || !strings.Contains(err.Error(), "authoriz") {
			t.Fatalf("round %d: the refused group's poll: %v", round, err)
		}
		r.forceStale()
		fetches.take()
		checkCommitted(t, r, qs) // the first of these fetches all seven groups at once
		if requests, groups, _ := fetches.take(); requests > 3 || groups != 7 {
			t.Fatalf("round %d: %d requests for %d groups; want the 7 groups in at most 3", round, requests, groups)
		}
	}
}

// TestTenantsDoNotWaitForEachOther: a pipeline whose cluster accepts connections and never
// answers holds only its own connection; a pipeline of another cluster polls meanwhile.
func TestTenantsDoNotWaitForEachOther(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	kc := startCluster(t, 1, 1, "t")
	r := NewReader(Options{Timeout: 30 * time.Second})
	defer r.Close()
	hung := make(chan error, 1)
	go func() {
		_, err := r.Poll(context.Background(), Query{Pipeline: "a/hung", Conn: Connection{BootstrapServers: []string{ln.Addr().String()}}, Topics: []string{"t"}, Group: "g"})
		hung <- err
	}()
	held := <-accepted // the hung cluster's poll is in progress
	defer func() { _ = held.Close() }()
	if _, err := r.Poll(context.Background(), Query{Pipeline: "b/ok", Conn: Connection{BootstrapServers: kc.Addrs}, Topics: []string{"t"}, Group: "g"}); err != nil {
		t.Fatalf("the other tenant's poll: %v", err)
	}
	select {
	case err := <-hung:
		t.Fatalf("the hung cluster's poll returned first (%v): the test did not hold it", err)
	default:
	}
}
