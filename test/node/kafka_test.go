package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	. "github.com/onsi/gomega"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kpipe-io/kpipe/test/kafkatest"
)

// The cluster's DNS Service (hack/node/cluster.sh): the driver resolves the brokers' advertised
// name there, as a pod would.
const clusterDNS = "10.96.0.10:53"

const (
	driverUser     = "driver"
	driverPassword = "driver-secret"
)

// kafkaClient is the driver's view of the in-cluster Kafka, from the host.
type kafkaClient struct {
	opts []kgo.Opt
	cl   *kgo.Client
	adm  *kadm.Client
}

func newKafkaClient(user, pass string) *kafkaClient {
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, clusterDNS)
	}}
	d := &net.Dialer{Resolver: res, Timeout: 5 * time.Second}
	opts := []kgo.Opt{
		kgo.SeedBrokers(bootstrap),
		kgo.Dialer(d.DialContext),
		kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()),
	}
	cl, err := kgo.NewClient(opts...)
	Expect(err).NotTo(HaveOccurred())
	return &kafkaClient{opts: opts, cl: cl, adm: kadm.NewClient(cl)}
}

func (k *kafkaClient) close() { k.cl.Close() }

func (k *kafkaClient) ping() error { return k.cl.Ping(ctx) }

func key(i int) string { return fmt.Sprintf("customer-%03d", i%200) }

// produce writes values [from, to) as "%08d", keyed by key(i), and waits for the acks.
func (k *kafkaClient) produce(topic string, from, to int) error {
	cl, err := kgo.NewClient(append(k.opts, kgo.ProducerLinger(5*time.Millisecond))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(key(i)), Value: fmt.Appendf(nil, "%08d", i)})
	}
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return cl.ProduceSync(c, recs...).FirstErr()
}

// values reads a topic from the start to its end offsets and counts each value.
func (k *kafkaClient) values(topic string) (map[string]int, error) {
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	recs, err := kafkatest.ReadToEnd(c, k.adm, k.opts, topic)
	seen := map[string]int{}
	for _, r := range recs {
		seen[string(r.Value)]++
	}
	return seen, err
}

// expectForwarded checks that every value in [0, n) is on the topic and returns the number of
// duplicates.
func expectForwarded(g Gomega, topic string, n int) int {
	seen, err := kafka.values(topic)
	g.Expect(err).NotTo(HaveOccurred())
	missing, total := 0, 0
	for i := range n {
		if seen[fmt.Sprintf("%08d", i)] == 0 {
			missing++
		}
	}
	for _, c := range seen {
		total += c
	}
	g.Expect(missing).To(BeZero(), "%d of %d messages missing from %s", missing, n, topic)
	return total - len(seen)
}

// committed is the group's committed offsets on a topic, summed over partitions.
func (k *kafkaClient) committed(group, topic string) (int64, error) {
	resp, err := k.adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, err
	}
	if resp.Error() != nil {
		return 0, errors.Join(resp.Error())
	}
	var total int64
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic {
			total += o.At
		}
	})
	return total, nil
}
