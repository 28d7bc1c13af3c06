package runtime

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// BenchmarkPartitionBookkeeping measures what the runtime does per message on a partition,
// outside the pool: admit a batch of 64 (offset tracking, in-flight count, the telemetry's
// record timestamp and batch admission time) and finish each message (the tracker, the
// finished count). The telemetry must not show here.
//
//	go test ./runtime -run '^$' -bench '^BenchmarkPartitionBookkeeping$'
func BenchmarkPartitionBookkeeping(b *testing.B) {
	pt := benchPartition()
	const batch = 64
	ms := make([]*sarama.ConsumerMessage, batch)
	sizes := make([]int64, batch)
	for i := range ms {
		ms[i] = &sarama.ConsumerMessage{Topic: "in", Timestamp: time.Now()}
		sizes[i] = 100
	}
	offsets := make([]int64, batch)
	var next int64
	now := time.Now()
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		for i, m := range ms {
			m.Offset, offsets[i] = next, next
			next++
		}
		pt.addAll(ms, sizes, now)
		for _, o := range offsets {
			pt.complete(o, resultIndexOK, 0)
		}
	}
}

func benchPartition() *partition {
	return newPartition(context.Background(), nil, nil, benchClaim{}, slog.New(slog.NewTextHandler(io.Discard, nil)), newMetrics("bench", "bench"))
}

type benchClaim struct{ sarama.ConsumerGroupClaim }

func (benchClaim) Topic() string        { return "in" }
func (benchClaim) Partition() int32     { return 0 }
func (benchClaim) InitialOffset() int64 { return 0 }
