package runtime

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// BenchmarkForward forwards the same 100k messages (6 partitions) with kpipe (8 workers, the
// default buffer of 16, Key and Unordered ordering) and with a
// plain sarama consumer-group handler that hands every message to an AsyncProducer (the
// usual hand-written pipeline), on the same kfake cluster in the same run, and reports
// msgs/s of each and their ratio. Each measurement runs from joining the group until the
// output topic holds every message.
//
//	go test ./runtime -run '^$' -bench BenchmarkForward -benchtime 3x
func BenchmarkForward(b *testing.B) {
	const n = 100_000
	tc := newTestCluster(b, map[string]int32{"in": 6, "out": 6})
	tc.produce(input{topic: "in", n: n, keys: 600, partitions: 6}, 0, n)
	rates := map[string]float64{}
	run := func(name string, forward func(ctx context.Context, b *testing.B, group string)) {
		b.Run(name, func(b *testing.B) {
			var total time.Duration
			i := 0
			for b.Loop() {
				group := name + "-" + strconv.Itoa(i)
				i++
				before := tc.countOutput("out")
				began := time.Now()
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() {
					defer close(done)
					forward(ctx, b, group)
				}()
				for tc.countOutput("out") < before+n {
					time.Sleep(5 * time.Millisecond)
				}
				total += time.Since(began)
				cancel()
				<-done
			}
			rate := float64(n*i) / total.Seconds()
			rates[name] = rate
			b.ReportMetric(rate, "msgs/s")
		})
	}
	run("kpipe-Key", func(ctx context.Context, b *testing.B, group string) {
		runKpipe(ctx, b, tc, group, kpipev1.OrderingKey, 16)
	})
	run("kpipe-Unordered", func(ctx context.Context, b *testing.B, group string) {
		runKpipe(ctx, b, tc, group, kpipev1.OrderingUnordered, 16)
	})
	run("sarama", func(ctx context.Context, b *testing.B, group string) { runPlainSarama(ctx, b, tc, group) })
	if base := rates["sarama"]; base > 0 {
		for _, name := range []string{"kpipe-Key", "kpipe-Unordered"} {
			b.Logf("%s: %.0f msgs/s, plain sarama: %.0f msgs/s, ratio %.2f", name, rates[name], base, rates[name]/base)
		}
	}
}

func runKpipe(ctx context.Context, b *testing.B, tc *testCluster, group string, ordering kpipev1.Ordering, buffer int) {
	spec := tc.baseSpec(group)
	spec["pool"] = map[string]any{"size": 8, "buffer": buffer, "ordering": string(ordering)}
	cfg, err := LoadConfig(specJSON(b, spec), SecretDirs{})
	if err != nil {
		b.Error(err)
		return
	}
	p, err := New(cfg, WithLogger(testLogger(b)), WithSaramaConfig(fastGroup))
	if err != nil {
		b.Error(err)
		return
	}
	if err := p.Run(ctx); err != nil {
		b.Error(err)
	}
}

// plainHandler is the baseline: every message goes to the AsyncProducer and is marked at once.
type plainHandler struct{ producer sarama.AsyncProducer }

func (plainHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (plainHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h plainHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			pm := &sarama.ProducerMessage{Topic: "out", Key: sarama.ByteEncoder(m.Key), Value: sarama.ByteEncoder(m.Value)}
			for _, hd := range m.Headers {
				pm.Headers = append(pm.Headers, *hd)
			}
			select {
			case h.producer.Input() <- pm:
			case <-sess.Context().Done():
				return nil
			}
			sess.MarkMessage(m, "")
		case <-sess.Context().Done():
			return nil
		}
	}
}

func runPlainSarama(ctx context.Context, b *testing.B, tc *testCluster, group string) {
	sc := sarama.NewConfig()
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Return.Successes = true
	sc.Producer.Partitioner = sarama.NewHashPartitioner
	fastGroup(sc)
	producer, err := sarama.NewAsyncProducer(tc.addrs, sc)
	if err != nil {
		b.Error(err)
		return
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for range producer.Successes() {
		}
	}()
	errs := make(chan struct{})
	go func() {
		defer close(errs)
		for err := range producer.Errors() {
			b.Error(err)
		}
	}()
	cg, err := sarama.NewConsumerGroup(tc.addrs, group, sc)
	if err != nil {
		b.Error(err)
		return
	}
	for ctx.Err() == nil {
		if err := cg.Consume(ctx, []string{"in"}, plainHandler{producer}); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) && ctx.Err() == nil {
			b.Error(fmt.Errorf("consume: %w", err))
			break
		}
	}
	_ = cg.Close()
	producer.AsyncClose()
	<-drained
	<-errs
}
