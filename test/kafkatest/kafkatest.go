// Package kafkatest runs an in-process Kafka cluster (kfake) for kpipe's tests, with helpers to
// produce, commit offsets as a consumer would, and count the requests the cluster receives.
package kafkatest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Cluster is a running kfake cluster with a franz-go client and admin.
type Cluster struct {
	*kfake.Cluster
	Addrs []string
	cl    *kgo.Client
	adm   *kadm.Client

	mu     sync.Mutex
	counts map[int16]int
}

// Start starts a cluster of n brokers with the topics seeded at the given partition count.
func Start(brokers int, partitions int32, topics ...string) (*Cluster, error) {
	return StartWith(brokers, partitions, topics, nil)
}

// SCRAMUser is a SCRAM-SHA-512 user of a SASL cluster.
type SCRAMUser struct{ User, Password string }

// StartSASL starts a cluster that requires SASL SCRAM-SHA-512; every user is a superuser. The
// test's own client logs in as the first.
func StartSASL(brokers int, partitions int32, topics []string, users ...SCRAMUser) (*Cluster, error) {
	opts := []kfake.Opt{kfake.EnableSASL()}
	for _, u := range users {
		opts = append(opts, kfake.Superuser("SCRAM-SHA-512", u.User, u.Password))
	}
	client := []kgo.Opt{kgo.SASL(scram.Auth{User: users[0].User, Pass: users[0].Password}.AsSha512Mechanism())}
	return StartWith(brokers, partitions, topics, opts, client...)
}

// StartWith starts a cluster with extra kfake options and options for the test's own client.
func StartWith(brokers int, partitions int32, topics []string, opts []kfake.Opt, clientOpts ...kgo.Opt) (*Cluster, error) {
	opts = append([]kfake.Opt{kfake.NumBrokers(brokers)}, opts...)
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(partitions, topics...))
	}
	kc, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	c := &Cluster{Cluster: kc, Addrs: kc.ListenAddrs(), counts: map[int16]int{}}
	clientOpts = append([]kgo.Opt{kgo.SeedBrokers(c.Addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner())}, clientOpts...)
	c.cl, err = kgo.NewClient(clientOpts...)
	if err != nil {
		kc.Close()
		return nil, err
	}
	c.adm = kadm.NewClient(c.cl)
	return c, nil
}

// Close stops the clients and the cluster.
func (c *Cluster) Close() {
	c.cl.Close()
	c.Cluster.Close()
}

// CreateTopic creates a topic.
func (c *Cluster) CreateTopic(ctx context.Context, topic string, partitions int32) error {
	resp, err := c.adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err != nil {
		return err
	}
	return resp.Err
}

// Produce writes n records to each listed partition of a topic.
func (c *Cluster) Produce(ctx context.Context, topic string, n int, partitions ...int32) error {
	var recs []*kgo.Record
	for _, p := range partitions {
		for i := range n {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprintf("m%d", i))})
		}
	}
	return c.cl.ProduceSync(ctx, recs...).FirstErr()
}

// ProduceAll writes n records to every partition of a topic of the given size.
func (c *Cluster) ProduceAll(ctx context.Context, topic string, partitions int32, n int) error {
	ps := make([]int32, partitions)
	for i := range ps {
		ps[i] = int32(i)
	}
	return c.Produce(ctx, topic, n, ps...)
}

// Commit commits offsets for a group, as a consumer of it would.
func (c *Cluster) Commit(ctx context.Context, group string, offsets map[string]map[int32]int64) error {
	os := kadm.Offsets{}
	for t, ps := range offsets {
		for p, at := range ps {
			os.Add(kadm.Offset{Topic: t, Partition: p, At: at, LeaderEpoch: -1})
		}
	}
	resp, err := c.adm.CommitOffsets(ctx, group, os)
	if err != nil {
		return err
	}
	return resp.Error()
}

// CommitToEnd commits the newest offset of every partition of the topics: the group has
// caught up.
func (c *Cluster) CommitToEnd(ctx context.Context, group string, topics ...string) error {
	ends, err := c.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return err
	}
	if err := ends.Error(); err != nil {
		return err
	}
	return c.Commit(ctx, group, endsMap(ends))
}

func endsMap(ends kadm.ListedOffsets) map[string]map[int32]int64 {
	out := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.Offset
	})
	return out
}

// Committed reads a group's committed offsets with franz-go, independently of sarama.
func (c *Cluster) Committed(ctx context.Context, group string) (map[string]map[int32]int64, error) {
	resp, err := c.adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	out := map[string]map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.At
	})
	return out, nil
}

// CommittedMetadata returns the metadata committed with each partition's offset for a group.
func (c *Cluster) CommittedMetadata(ctx context.Context, group string) (map[string]map[int32]string, error) {
	resp, err := c.adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	if err := resp.Error(); err != nil {
		return nil, err
	}
	out := map[string]map[int32]string{}
	resp.Each(func(o kadm.OffsetResponse) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]string{}
		}
		out[o.Topic][o.Partition] = o.Metadata
	})
	return out, nil
}

// CountRequests starts counting every request the cluster handles, by request key. The count
// runs beside normal handling: the control function never handles a request.
func (c *Cluster) CountRequests() {
	c.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.mu.Lock()
		c.counts[req.Key()]++
		c.mu.Unlock()
		return nil, nil, false
	})
}

// Counts returns the counts so far and resets them.
func (c *Cluster) Counts() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := Counts(c.counts)
	c.counts = map[int16]int{}
	return out
}

// Counts are request counts by request key.
type Counts map[int16]int

// Total is the number of requests.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Of is the count for one request key, such as kmsg.ListOffsets.
func (c Counts) Of(key kmsg.Key) int { return c[int16(key)] }

func (c Counts) String() string {
	keys := make([]int, 0, len(c))
	for k := range c {
		keys = append(keys, int(k))
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		name := kmsg.NameForKey(int16(k))
		parts = append(parts, fmt.Sprintf("%s=%d", name, c[int16(k)]))
	}
	return fmt.Sprintf("total=%d [%s]", c.Total(), strings.Join(parts, " "))
}

// Records reads every record of a topic from the start up to its end offsets at the time of
// the call, with a consumer of its own.
func (c *Cluster) Records(ctx context.Context, topic string) ([]*kgo.Record, error) {
	return ReadToEnd(ctx, c.adm, []kgo.Opt{kgo.SeedBrokers(c.Addrs...)}, topic)
}

// ReadToEnd reads every record of a topic from the start up to its end offsets at the time of
// the call (listed with adm), with a consumer of its own built from opts (brokers, credentials).
func ReadToEnd(ctx context.Context, adm *kadm.Client, opts []kgo.Opt, topic string) ([]*kgo.Record, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	if err := ends.Error(); err != nil {
		return nil, err
	}
	remaining := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			remaining[o.Partition] = o.Offset
		}
	})
	if len(remaining) == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(opts), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(remaining) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("read %s: %w (%d partitions not read to the end)", topic, err, len(remaining))
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := remaining[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			out = append(out, r)
			if r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
		})
	}
	return out, nil
}

// ProduceValues writes one record per value, keyed by keyOf(i), spread by key over the
// topic's partitions, and waits for the acks.
func (c *Cluster) ProduceValues(ctx context.Context, topic string, from, to int, keyOf func(int) string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(keyOf(i)), Value: []byte(fmt.Sprintf("%08d", i))})
	}
	return cl.ProduceSync(ctx, recs...).FirstErr()
}
