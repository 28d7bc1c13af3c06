package runtime

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe-io/kpipe/internal/telemetry"
)

// committedRecord is a partition's committed offset and the telemetry record in its
// metadata, read back the way the operator does: an OffsetFetch (here from a franz-go admin
// client, independent of the sarama code under test), then telemetry.Decode.
type committedRecord struct {
	offset int64
	meta   string
	rec    telemetry.Record
	err    error // of Decode
}

// records returns the committed offset and record of every partition of topic that has a
// commit. It fails g while the group does not exist yet.
func (tc *testCluster) records(g Gomega, group, topic string, partitions int32) map[int32]committedRecord {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offs, err := tc.adm.FetchOffsets(ctx, group)
	g.Expect(err).NotTo(HaveOccurred())
	out := map[int32]committedRecord{}
	for p := range partitions {
		if o, ok := offs.Lookup(topic, p); ok && o.At >= 0 {
			rec, err := telemetry.Decode(o.Metadata)
			out[p] = committedRecord{offset: o.At, meta: o.Metadata, rec: rec, err: err}
		}
	}
	return out
}

// TestTelemetryOnEveryPartition: every partition the replica owns carries a record naming
// it, those that never received a message included, within MaxLen even for a very long
// name; the records are refreshed at every commit while the offsets do not move (for more
// than a second: one late commit of an old record is not a refresh).
func TestTelemetryOnEveryPartition(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 4})
	in := input{topic: "in", n: 40, keys: 2, partitions: 4} // partitions 0 and 1 only
	tc.produce(in, 0, in.n)
	replica := strings.Repeat("a-very-long-pod-name-", 20) + "7d9f-x2k4q"
	h := HandlerFunc(func(context.Context, *Message) error { return nil })
	r := start(t, specJSON(t, tc.handlerSpec("everyone")), WithHandler(h), WithInstance(replica))
	tc.expectCommittedAtEnd(g, "everyone", "in")

	var first map[int32]committedRecord
	g.Eventually(func(g Gomega) {
		first = tc.records(g, "everyone", "in", 4)
		g.Expect(first).To(HaveLen(4))
		for p, c := range first {
			g.Expect(c.err).NotTo(HaveOccurred(), "partition %d: metadata %q", p, c.meta)
			g.Expect(len(c.meta)).To(BeNumerically("<=", telemetry.MaxLen))
			g.Expect(replica).To(HaveSuffix(c.rec.Replica), "partition %d", p)
			g.Expect(len(c.rec.Replica)).To(BeNumerically(">", 100), "partition %d: the name's end is kept", p)
			g.Expect(c.rec.State).To(Equal(telemetry.StateOK))
			g.Expect(c.rec.InFlight).To(BeZero())
		}
		g.Expect(first[0].rec.LastTimestamp.IsZero()).To(BeFalse(), "partition 0 had messages")
		g.Expect(first[2].rec.LastTimestamp.IsZero()).To(BeTrue(), "partition 2 never had one")
	}).WithTimeout(30 * time.Second).Should(Succeed())

	g.Eventually(func(g Gomega) {
		now := tc.records(g, "everyone", "in", 4)
		for p, c := range now {
			g.Expect(c.offset).To(Equal(first[p].offset), "partition %d moved", p)
			g.Expect(c.rec.At).To(BeTemporally(">", first[p].rec.At.Add(time.Second)), "partition %d: record not refreshed", p)
		}
	}).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	r.stop(t)
}

// TestTelemetrySlowHandler: one partition in Partition ordering runs on one of the four
// workers, 100 ms a message. The record shows about 10 messages/s, a busy share of about a
// quarter (capacity rate/busy about 40 messages/s), messages in flight, the oldest of them
// waiting, and the timestamp of the last message committed.
func TestTelemetrySlowHandler(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 1})
	in := input{topic: "in", n: 400, keys: 1, partitions: 1}
	produced := time.Now()
	tc.produce(in, 0, in.n)
	h := HandlerFunc(func(context.Context, *Message) error {
		time.Sleep(100 * time.Millisecond)
		return nil
	})
	spec := tc.handlerSpec("slow")
	spec["pool"] = map[string]any{"size": 4, "buffer": 16, "ordering": "Partition"}
	r := start(t, specJSON(t, spec), WithHandler(h), WithInstance("slow-pod"))

	// Plausible, not timed: a handler on one lane cannot exceed 10/s, and a loaded machine
	// slows it down somewhat, not by half.
	g.Eventually(func(g Gomega) {
		c := tc.records(g, "slow", "in", 1)[0]
		g.Expect(c.err).NotTo(HaveOccurred())
		g.Expect(c.offset).To(BeNumerically(">", 30), "let the averages settle")
		rec := c.rec
		g.Expect(rec.Rate).To(BeNumerically("~", 8, 3), "messages/s")
		g.Expect(rec.Busy).To(BeNumerically("~", 0.25, 0.1), "one of four workers")
		g.Expect(rec.Rate/rec.Busy).To(BeNumerically("~", 35, 15), "capacity")
		g.Expect(rec.InFlight).To(BeNumerically(">=", 2), "one running, others admitted behind it")
		g.Expect(rec.OldestInFlight).To(BeNumerically(">", 50*time.Millisecond))
		g.Expect(rec.OldestInFlight).To(BeNumerically("<", 10*time.Second))
		g.Expect(rec.LastTimestamp).To(BeTemporally("~", produced, 5*time.Second))
		g.Expect(rec.State).To(Equal(telemetry.StateOK))
		g.Expect(rec.Replica).To(Equal("slow-pod"))
		t.Logf("record at offset %d: %s", c.offset, c.meta)
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	r.stop(t)
}

// TestTelemetryRetrying: while the oldest message keeps failing between attempts the
// state is retry; while its dead letter cannot be written, dlq; both with the offset
// unmoved and the record still refreshed.
func TestTelemetryRetrying(t *testing.T) {
	for _, tt := range []struct {
		name      string
		permanent bool // straight to the dead-letter topic, which refuses writes
		want      telemetry.State
	}{
		{"retry", false, telemetry.StateRetrying},
		{"dlq", true, telemetry.StateDeadLetterBlocked},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			tc := newTestCluster(t, map[string]int32{"in": 1, "dlq": 1})
			tc.produce(input{topic: "in", n: 5, keys: 1, partitions: 1}, 0, 5)
			tc.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "dlq", Err: kerr.TopicAuthorizationFailed, Count: -1})
			h := HandlerFunc(func(context.Context, *Message) error {
				if tt.permanent {
					return Permanent(errors.New("poison"))
				}
				return errors.New("not now")
			})
			spec := tc.handlerSpec("failing-" + tt.name)
			spec["retry"] = map[string]any{"maxAttempts": 100, "initialBackoff": "500ms", "maxBackoff": "1s"}
			r := start(t, specJSON(t, spec), WithHandler(h))
			var seen committedRecord
			g.Eventually(func(g Gomega) {
				seen = tc.records(g, "failing-"+tt.name, "in", 1)[0]
				g.Expect(seen.err).NotTo(HaveOccurred())
				g.Expect(seen.rec.State).To(Equal(tt.want))
			}).WithTimeout(30 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
			g.Expect(seen.offset).To(BeZero(), "the start, not past the failing message")
			g.Expect(seen.rec.InFlight).To(BeNumerically(">=", 1))
			g.Expect(seen.rec.Rate).To(BeZero())
			g.Eventually(func(g Gomega) time.Time { return tc.records(g, "failing-"+tt.name, "in", 1)[0].rec.At }).
				WithTimeout(10*time.Second).Should(BeTemporally(">", seen.rec.At.Add(time.Second)), "record refreshed")
			r.stop(t)
		})
	}
}

// TestTelemetryExactlyOnce: in ExactlyOnce the records travel with the transaction's offsets,
// and while nothing moves they are refreshed without a transaction (commits of the same
// offsets, every commit interval, for more than a second); a partition that never
// receives a message has its start committed.
func TestTelemetryExactlyOnce(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 3, "out": 3})
	in := input{topic: "in", n: 200, keys: 2, partitions: 3} // partitions 0 and 1 only
	tc.produce(in, 0, in.n)
	r := start(t, specJSON(t, tc.exactlyOnceSpec("eos-telemetry")), WithInstance("eos-pod"))
	tc.expectCommittedAtEnd(g, "eos-telemetry", "in")
	var first map[int32]committedRecord
	g.Eventually(func(g Gomega) {
		first = tc.records(g, "eos-telemetry", "in", 3)
		g.Expect(first).To(HaveLen(3))
		for p, c := range first {
			g.Expect(c.err).NotTo(HaveOccurred(), "partition %d: metadata %q", p, c.meta)
			g.Expect(c.rec.Replica).To(Equal("eos-pod"))
		}
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) {
		for p, c := range tc.records(g, "eos-telemetry", "in", 3) {
			g.Expect(c.offset).To(Equal(first[p].offset), "partition %d moved", p)
			g.Expect(c.rec.At).To(BeTemporally(">", first[p].rec.At.Add(time.Second)), "partition %d: record not refreshed", p)
		}
	}).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	r.stop(t)
	out := tc.readCommitted("out", in.n, time.Minute)
	g.Expect(checkAllPresent(t, out, in.n)).To(BeZero(), "duplicates on the output")
}
