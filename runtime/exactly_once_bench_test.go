package runtime

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// BenchmarkExactlyOnceForward compares the forward processor's throughput in ExactlyOnce and
// AtLeastOnce, in one run on one kfake cluster: 300k messages on 6 partitions, forwarded by
// one pipeline with the default 1 s commit interval, three rounds, the two modes alternating.
// The rate is the input over the time from starting the pipeline (joining the group included)
// until a read-committed reader can read all of the output: its last stable offsets (the high
// watermark in AtLeastOnce) reach the input's count.
//
//	go test ./runtime -run '^$' -bench '^BenchmarkExactlyOnceForward$' -benchtime 1x -v
func BenchmarkExactlyOnceForward(b *testing.B) {
	const (
		n      = 300_000
		rounds = 3
	)
	modes := []string{"AtLeastOnce", "ExactlyOnce"}
	topics := map[string]int32{"eosin": 6}
	for r := range rounds {
		for _, m := range modes {
			topics[fmt.Sprintf("eosout-%s-%d", m, r)] = 6
		}
	}
	tc := newTestCluster(b, topics)
	tc.produce(input{topic: "eosin", n: n, keys: 600, partitions: 6}, 0, n)
	rates := map[string][]float64{}
	var ratios []float64
	for b.Loop() {
		for r := range rounds {
			for _, m := range modes {
				out := fmt.Sprintf("eosout-%s-%d", m, r)
				spec := tc.baseSpec("eos-bench-" + out)
				spec["topics"] = []string{"eosin"}
				spec["processor"] = map[string]any{"forward": map[string]any{"topic": out, "delivery": m}}
				if m == "ExactlyOnce" {
					spec["kafka"] = map[string]any{"bootstrapServers": tc.addrs, "isolationLevel": "ReadCommitted", "rebalanceStrategy": "Range"}
				}
				began := time.Now()
				stop := runFor(kpipeRun(b, spec, WithShutdownTimeout(0), WithInstance(out)))
				rates[m] = append(rates[m], float64(n)/tc.untilStable(b, out, n).Sub(began).Seconds())
				stop()
			}
			ratios = append(ratios, rates["ExactlyOnce"][r]/rates["AtLeastOnce"][r])
		}
	}
	section := "3b forward delivery (300k messages, 6 partitions, commit interval 1s)"
	for r := range rounds {
		benchRow(b, section, "ExactlyOnce vs AtLeastOnce, round "+strconv.Itoa(r+1),
			rate(rates["ExactlyOnce"][r]), rate(rates["AtLeastOnce"][r]), ratio(rates["ExactlyOnce"][r], rates["AtLeastOnce"][r]), "")
	}
	slices.Sort(ratios)
	benchRow(b, section, "ExactlyOnce vs AtLeastOnce, median of the rounds' ratios", "", "", strconv.FormatFloat(ratios[len(ratios)/2], 'f', 2, 64)+"x", "")
}

// untilStable waits until the last stable offsets of topic reach want in all (markers
// included), at most 2 minutes, and returns when.
func (tc *testCluster) untilStable(b *testing.B, topic string, want int64) time.Time {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		lo, err := tc.adm.ListCommittedOffsets(ctx, topic)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		var sum int64
		lo.Each(func(o kadm.ListedOffset) { sum += o.Offset })
		if sum >= want {
			return time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Errorf("%s: the last stable offsets did not reach %d", topic, want)
	return time.Now()
}
