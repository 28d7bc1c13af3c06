package lag

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe-io/kpipe/controllers/scaling"
	"github.com/kpipe-io/kpipe/test/kafkatest"
)

func startCluster(t *testing.T, brokers int, partitions int32, topics ...string) *kafkatest.Cluster {
	t.Helper()
	c, err := kafkatest.Start(brokers, partitions, topics...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func offsetsOf(res *Result) map[scaling.TopicPartition]scaling.Offsets {
	m := map[scaling.TopicPartition]scaling.Offsets{}
	for _, o := range res.Offsets {
		m[o.TopicPartition] = o
	}
	return m
}

func TestPollReadsOffsets(t *testing.T) {
	ctx := context.Background()
	kc := startCluster(t, 3, 4, "a", "b")
	if err := kc.Produce(ctx, "a", 10, 0, 1); err != nil {
		t.Fatal(err)
	}
	if err := kc.Produce(ctx, "b", 3, 3); err != nil {
		t.Fatal(err)
	}
	if err := kc.Commit(ctx, "g", map[string]map[int32]int64{"a": {0: 4}}); err != nil {
		t.Fatal(err)
	}
	r := NewReader(Options{Timeout: 5 * time.Second})
	defer r.Close()
	res, err := r.Poll(ctx, Query{Pipeline: "ns/p", Conn: Connection{BootstrapServers: kc.Addrs}, Topics: []string{"a", "b"}, Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Partitions["a"] != 4 || res.Partitions["b"] != 4 || len(res.Offsets) != 8 {
		t.Fatalf("partitions %v, %d offsets", res.Partitions, len(res.Offsets))
	}
	o := offsetsOf(res)
	want := map[scaling.TopicPartition]scaling.Offsets{
		{Topic: "a", Partition: 0}: {Newest: 10, Oldest: 0, Committed: 4},
		{Topic: "a", Partition: 1}: {Newest: 10, Oldest: 0, Committed: -1},
		{Topic: "a", Partition: 2}: {Newest: 0, Oldest: 0, Committed: -1},
		{Topic: "b", Partition: 3}: {Newest: 3, Oldest: 0, Committed: -1},
	}
	for tp, w := range want {
		g := o[tp]
		if g.Newest != w.Newest || g.Oldest != w.Oldest || g.Committed != w.Committed {
			t.Errorf("%s: newest %d oldest %d committed %d; want %d %d %d", tp, g.Newest, g.Oldest, g.Committed, w.Newest, w.Oldest, w.Committed)
		}
	}
}

func TestPollMissingTopic(t *testing.T) {
	kc := startCluster(t, 1, 2, "a")
	r := NewReader(Options{Timeout: 5 * time.Second})
	defer r.Close()
	_, err := r.Poll(context.Background(), Query{Pipeline: "ns/p", Conn: Connection{BootstrapServers: kc.Addrs}, Topics: []string{"a", "nope"}, Group: "g"})
	var te *TopicError
	if !errors.As(err, &te) || te.Topic != "nope" || !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("err = %v, want topic not found for nope", err)
	}
	// The operator never creates topics.
	_, err = r.Poll(context.Background(), Query{Pipeline: "ns/p", Conn: Connection{BootstrapServers: kc.Addrs}, Topics: []string{"nope"}, Group: "g"})
	if !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("second poll: %v", err)
	}
}

func TestPollUnreachable(t *testing.T) {
	r := NewReader(Options{Timeout: 2 * time.Second})
	defer r.Close()
	_, err := r.Poll(context.Background(), Query{Pipeline: "ns/p", Conn: Connection{BootstrapServers: []string{"127.0.0.1:1"}}, Topics: []string{"a"}, Group: "g"})
	if err == nil || errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("err = %v, want a connection error", err)
	}
}

func TestConnectionsAreSharedAndClosed(t *testing.T) {
	ctx := context.Background()
	kc := startCluster(t, 1, 1, "a")
	r := NewReader(Options{Timeout: 5 * time.Second})
	defer r.Close()
	conn := Connection{BootstrapServers: kc.Addrs}
	for _, p := range []string{"ns/p1", "ns/p2"} {
		if _, err := r.Poll(ctx, Query{Pipeline: p, Conn: conn, Topics: []string{"a"}, Group: p}); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.Connections(); n != 1 {
		t.Fatalf("%d connections for one cluster", n)
	}
	// New credentials: a new client; the old one closes when its last user moves.
	rotated := conn
	rotated.AuthHash = "new"
	if _, err := r.Poll(ctx, Query{Pipeline: "ns/p1", Conn: rotated, Topics: []string{"a"}, Group: "p1"}); err != nil {
		t.Fatal(err)
	}
	if n := r.Connections(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
	r.Release("ns/p2")
	if n := r.Connections(); n != 1 {
		t.Fatalf("%d connections after the old one lost its last user, want 1", n)
	}
	r.Release("ns/p1")
	if n := r.Connections(); n != 0 {
		t.Fatalf("%d connections after every release", n)
	}
}

// TestRequestsPerPoll measures the Kafka requests of a poll and checks that they grow with
// brokers and consumer groups, not with partitions.
func TestRequestsPerPoll(t *testing.T) {
	ctx := context.Background()
	measure := func(brokers int, partitions int32, pipelines int, maxAge time.Duration) kafkatest.Counts {
		kc := startCluster(t, brokers, partitions, "t1", "t2", "t3")
		for _, topic := range []string{"t1", "t2", "t3"} {
			if err := kc.ProduceAll(ctx, topic, partitions, 2); err != nil {
				t.Fatal(err)
			}
		}
		r := NewReader(Options{Timeout: 5 * time.Second})
		defer r.Close()
		conn := Connection{BootstrapServers: kc.Addrs}
		round := func() {
			for i := range pipelines {
				q := Query{Pipeline: fmt.Sprintf("ns/p%d", i), Conn: conn, Topics: []string{"t1", "t2", "t3"}, Group: fmt.Sprintf("g%d", i), MaxAge: maxAge}
				res, err := r.Poll(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Offsets) != 3*int(partitions) {
					t.Fatalf("%d offsets", len(res.Offsets))
				}
			}
		}
		kc.CountRequests()
		kc.Counts()
		round() // warm up: connections, ApiVersions, coordinators, oldest offsets
		warm := kc.Counts()
		t.Logf("  first poll (connect, find coordinators, oldest offsets): %s", warm)
		r.forceStale()
		round()
		return kc.Counts()
	}

	one := measure(3, 32, 1, time.Minute)
	t.Logf("1 pipeline, 3 topics x 32 partitions, 3 brokers, per poll: %s", one)
	fifty := measure(3, 32, 50, time.Minute)
	t.Logf("50 pipelines (50 groups) on one cluster, 3 topics x 32 partitions, 3 brokers, one poll each: %s", fifty)
	unshared := measure(3, 32, 50, 0)
	t.Logf("the same 50 pipelines without sharing the broker-wide reads (MaxAge 0): %s", unshared)
	small := measure(3, 4, 1, time.Minute)
	t.Logf("1 pipeline, 3 topics x 4 partitions, 3 brokers, per poll: %s", small)
	oneBroker := measure(1, 32, 1, time.Minute)
	t.Logf("1 pipeline, 3 topics x 32 partitions, 1 broker, per poll: %s", oneBroker)

	if one.Of(kmsg.ListOffsets) != 3 || one.Of(kmsg.Metadata) != 1 || one.Of(kmsg.OffsetFetch) != 1 || one.Of(kmsg.DescribeGroups) != 1 || one.Total() != 6 {
		t.Errorf("one pipeline: %s; want 1 Metadata, 3 ListOffsets (one per broker), 1 OffsetFetch, 1 DescribeGroups", one)
	}
	// 12 partitions may have their leaders on fewer than the 3 brokers (kfake places them at
	// random), so the small cluster costs at most, not exactly, what the large one does.
	if small.Total() > one.Total() || small.Of(kmsg.ListOffsets) > 3 {
		t.Errorf("cost grows with partitions: %s vs %s", small, one)
	}
	if oneBroker.Of(kmsg.ListOffsets) != 1 {
		t.Errorf("one broker: %s; want 1 ListOffsets", oneBroker)
	}
	// The first poll fetches every group's committed offsets at once, one OffsetFetch per
	// coordinator (kfake spreads the 50 groups over its 3 brokers); the other 49 reuse it.
	if fifty.Of(kmsg.OffsetFetch) < 1 || fifty.Of(kmsg.OffsetFetch) > 3 || fifty.Of(kmsg.ListOffsets) != 3 || fifty.Of(kmsg.Metadata) != 1 ||
		fifty.Of(kmsg.DescribeGroups) != fifty.Of(kmsg.OffsetFetch) {
		t.Errorf("fifty pipelines: %s; want at most 3 OffsetFetch and as many DescribeGroups (one per coordinator), 3 ListOffsets, 1 Metadata", fifty)
	}
	if unshared.Total() != 50*one.Total() {
		t.Errorf("fifty unshared pipelines: %s; want 50 x %d", unshared, one.Total())
	}
}

// forceStale makes the next poll of every connection read metadata, newest offsets and
// committed offsets again.
func (r *Reader) forceStale() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.sem <- struct{}{}
		c.readAt = time.Time{}
		c.groups = nil
		c.unlock()
	}
}

// TestSharedReadBehindACommit: a pipeline that reuses newest offsets read by another pipeline
// before its own group committed past them sees no lag, not an out-of-range commit.
func TestSharedReadBehindACommit(t *testing.T) {
	ctx := context.Background()
	kc := startCluster(t, 1, 1, "t")
	if err := kc.Produce(ctx, "t", 10, 0); err != nil {
		t.Fatal(err)
	}
	r := NewReader(Options{Timeout: 5 * time.Second})
	defer r.Close()
	conn := Connection{BootstrapServers: kc.Addrs}
	if _, err := r.Poll(ctx, Query{Pipeline: "ns/a", Conn: conn, Topics: []string{"t"}, Group: "a", MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := kc.Produce(ctx, "t", 5, 0); err != nil {
		t.Fatal(err)
	}
	if err := kc.Commit(ctx, "b", map[string]map[int32]int64{"t": {0: 15}}); err != nil {
		t.Fatal(err)
	}
	res, err := r.Poll(ctx, Query{Pipeline: "ns/b", Conn: conn, Topics: []string{"t"}, Group: "b", MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	o := res.Offsets[0]
	pl := scaling.Lag(o, true)
	if o.Committed != 15 || pl.Reset || pl.Lag != 0 {
		t.Fatalf("offsets %+v, lag %+v; want committed 15, no reset, no lag", o, pl)
	}
	// A fresh read sees the real end.
	res, err = r.Poll(ctx, Query{Pipeline: "ns/b", Conn: conn, Topics: []string{"t"}, Group: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Offsets[0].Newest != 15 {
		t.Fatalf("fresh read: %+v", res.Offsets[0])
	}
}
