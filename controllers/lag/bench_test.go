package lag

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe-io/kpipe/internal/kafkaclient"
	"github.com/kpipe-io/kpipe/test/kafkatest"
)

// naiveLag is the usual hand-written lag reader: refresh the topic's metadata, one
// client.GetOffset per partition for the newest offset, and the group's committed offsets.
type naiveLag struct {
	client sarama.Client
	admin  sarama.ClusterAdmin
}

func newNaiveLag(addrs []string) (*naiveLag, error) {
	sc := sarama.NewConfig()
	sc.Version = kafkaclient.DefaultVersion
	client, err := sarama.NewClient(addrs, sc)
	if err != nil {
		return nil, err
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	return &naiveLag{client: client, admin: admin}, nil
}

func (n *naiveLag) poll(topic, group string) (int64, error) {
	if err := n.client.RefreshMetadata(topic); err != nil {
		return 0, err
	}
	partitions, err := n.client.Partitions(topic)
	if err != nil {
		return 0, err
	}
	committed, err := n.admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: partitions})
	if err != nil {
		return 0, err
	}
	var lag int64
	for _, p := range partitions {
		newest, err := n.client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		if b := committed.GetBlock(topic, p); b != nil && b.Offset >= 0 {
			lag += newest - b.Offset
		}
	}
	return lag, nil
}

func (n *naiveLag) close() { _ = n.admin.Close() }

// BenchmarkLagPoll measures one steady-state lag poll (connections made, coordinator found)
// of a group on one topic of 10 to 10 000 partitions on a 3-broker kfake cluster: the Kafka
// requests it sends and its wall time, for kpipe's shared reader (fresh metadata and newest
// offsets, MaxAge 0) and for the naive reader. It logs BENCH rows.
//
//	go test ./controllers/lag -run '^$' -bench '^BenchmarkLagPoll$' -benchtime 1x -v
func BenchmarkLagPoll(b *testing.B) {
	ctx := context.Background()
	const section = "4 lag reading, one poll"
	for b.Loop() {
		for _, tc := range []struct {
			brokers    int
			partitions int32
		}{{3, 10}, {3, 100}, {3, 1000}, {3, 10_000}, {1, 1000}} {
			partitions := tc.partitions
			kc, err := kafkatest.Start(tc.brokers, partitions, "t")
			if err != nil {
				b.Fatal(err)
			}
			if err := kc.ProduceAll(ctx, "t", partitions, 2); err != nil {
				b.Fatal(err)
			}
			offsets := map[int32]int64{}
			for p := range partitions {
				offsets[p] = 1
			}
			if err := kc.Commit(ctx, "g", map[string]map[int32]int64{"t": offsets}); err != nil {
				b.Fatal(err)
			}
			kc.CountRequests()
			polls := max(3, int(1000/partitions)) // more polls where one is short

			r := NewReader(Options{Timeout: 30 * time.Second})
			q := Query{Pipeline: "ns/p", Conn: Connection{BootstrapServers: kc.Addrs}, Topics: []string{"t"}, Group: "g"}
			if _, err := r.Poll(ctx, q); err != nil { // connect, find the coordinator, oldest offsets
				b.Fatal(err)
			}
			kc.Counts()
			began := time.Now()
			for range polls {
				res, err := r.Poll(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Offsets) != int(partitions) {
					b.Fatalf("%d offsets, want %d", len(res.Offsets), partitions)
				}
			}
			kpipeTime := time.Since(began) / time.Duration(polls)
			kpipeReqs := kc.Counts()
			r.Close()

			naive, err := newNaiveLag(kc.Addrs)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := naive.poll("t", "g"); err != nil {
				b.Fatal(err)
			}
			kc.Counts()
			began = time.Now()
			for range polls {
				lag, err := naive.poll("t", "g")
				if err != nil {
					b.Fatal(err)
				}
				if lag != int64(partitions) {
					b.Fatalf("naive lag %d, want %d", lag, partitions)
				}
			}
			naiveTime := time.Since(began) / time.Duration(polls)
			naiveReqs := kc.Counts()
			naive.close()
			kc.Close()

			perPoll := func(c kafkatest.Counts) float64 { return float64(c.Total()) / float64(polls) }
			row := fmt.Sprintf("%d partitions, %d broker(s)", partitions, tc.brokers)
			b.Logf("%s, kpipe per %d polls: %s; naive: %s", row, polls, kpipeReqs, naiveReqs)
			b.Logf("BENCH|%s|%s: requests per poll|%.0f|%.0f|%.4fx|kpipe: %s", section, row,
				perPoll(kpipeReqs), perPoll(naiveReqs), perPoll(kpipeReqs)/perPoll(naiveReqs), perPollString(kpipeReqs, polls))
			b.Logf("BENCH|%s|%s: wall time per poll|%s|%s|%.3fx|", section, row,
				kpipeTime.Round(time.Microsecond), naiveTime.Round(time.Microsecond), float64(kpipeTime)/float64(naiveTime))
		}
	}
}

// perPollString lists the requests of one poll by kind.
func perPollString(c kafkatest.Counts, polls int) string {
	var parts []string
	for k, v := range c {
		parts = append(parts, fmt.Sprintf("%d %s", v/polls, kmsg.NameForKey(k)))
	}
	slices.Sort(parts)
	return strings.Join(parts, " + ")
}
