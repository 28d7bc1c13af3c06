package runtime

import (
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestForwardEveryOrdering forwards 100k messages over 6 partitions with a pool of 8 in
// each ordering mode: nothing is lost, the mode's order holds on the output topic, and the
// group ends with its committed offsets at the log end.
func TestForwardEveryOrdering(t *testing.T) {
	const n = 100_000
	for _, tt := range []struct {
		ordering      string
		outPartitions int32
		check         func(t *testing.T, in input, out []outRecord)
	}{
		{"Key", 6, func(t *testing.T, _ input, out []outRecord) {
			partOf := map[string]int32{}
			for _, r := range out {
				if p, ok := partOf[r.key]; ok && p != r.partition {
					t.Fatalf("key %s forwarded to partitions %d and %d: want one partition per key", r.key, p, r.partition)
				}
				partOf[r.key] = r.partition
			}
			checkOrder(t, out, "key", func(r outRecord) string { return r.key })
		}},
		// One output partition shows the order of each input partition on the output.
		{"Partition", 1, func(t *testing.T, in input, out []outRecord) {
			checkOrder(t, out, "input partition", func(r outRecord) string {
				return strconv.Itoa(int(in.partition(r.value)))
			})
		}},
		{"Unordered", 6, nil},
	} {
		t.Run(tt.ordering, func(t *testing.T) {
			g := NewWithT(t)
			tc := newTestCluster(t, map[string]int32{"in": 6, "out": tt.outPartitions})
			in := input{topic: "in", n: n, keys: 600, partitions: 6}
			tc.produce(in, 0, n)

			spec := tc.baseSpec("fwd")
			spec["pool"] = map[string]any{"size": 8, "ordering": tt.ordering}
			began := time.Now()
			r := start(t, specJSON(t, spec))
			out := tc.readAll("out", n, 2*time.Minute)
			tc.expectCommittedAtEnd(g, "fwd", "in")
			t.Logf("%s: %d messages forwarded in %s", tt.ordering, n, time.Since(began).Round(time.Millisecond))
			r.stop(t)

			dups := checkAllPresent(t, out, n)
			t.Logf("%s: %d duplicates", tt.ordering, dups)
			for _, rec := range out {
				if rec.headers["seq"] != strconv.Itoa(rec.value) || rec.key != in.key(rec.value) {
					t.Fatalf("record %d lost its key or headers: key %q headers %v", rec.value, rec.key, rec.headers)
				}
			}
			if tt.check != nil {
				tt.check(t, in, out)
			}
		})
	}
}
