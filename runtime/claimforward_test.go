package runtime

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	. "github.com/onsi/gomega"
)

// holdProduce makes the cluster answer every produce request to topic only after hold
// returns, leaving other requests alone.
func (tc *testCluster) holdProduce(topic string, hold func()) {
	tc.c.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		tc.c.KeepControl()
		for _, t := range r.(*kmsg.ProduceRequest).Topics {
			if t.Topic == topic {
				tc.c.SleepControl(hold)
			}
		}
		return nil, nil, false
	})
}

// TestClaimForwardBusyShare: a forward pipeline's claims forward themselves and its workers
// sit idle, so the busy share comes from the claims. A slow sink (every produce request
// answered after 20 ms) with a window of 50 messages bounds the rate; with a backlog the
// claims never wait for a message, only for the window: the records must read busy, so that
// rate / busy (the operator's capacity) is about the rate itself, not a multiple of it. Once
// the backlog is forwarded the claims wait for messages and the share falls. Both partitions
// progress meanwhile: a claim waiting for the window does not hold the pool's slots the
// other claim needs to queue for it too (handing).
func TestClaimForwardBusyShare(t *testing.T) {
	g := NewWithT(t)
	const n = 6000
	tc := newTestCluster(t, map[string]int32{"in": 2, "out": 2})
	in := input{topic: "in", n: n, keys: 20, partitions: 2}
	tc.produce(in, 0, n)
	tc.holdProduce("out", func() { time.Sleep(20 * time.Millisecond) })
	r := start(t, specJSON(t, tc.baseSpec("busy")), WithProducerWindow(50), WithInstance("busy-pod"))

	g.Eventually(func(g Gomega) {
		recs := tc.records(g, "busy", "in", 2)
		g.Expect(recs).To(HaveLen(2))
		rate := 0.0
		for p, c := range recs {
			g.Expect(c.err).NotTo(HaveOccurred())
			g.Expect(c.offset).To(BeNumerically(">", 300), "partition %d: let the averages settle", p)
			g.Expect(c.offset).To(BeNumerically("<", n/2-300), "partition %d: still a backlog", p)
			rate += c.rec.Rate
		}
		busy := recs[0].rec.Busy
		g.Expect(busy).To(BeNumerically(">", 0.8), "claims waiting for the window only")
		t.Logf("backlog: rate %.0f msg/s, busy %.2f, capacity %.0f msg/s", rate, busy, rate/busy)
	}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())

	out := tc.readAll("out", n, 2*time.Minute)
	tc.expectCommittedAtEnd(g, "busy", "in")
	checkAllPresent(t, out, n)
	g.Eventually(func(g Gomega) {
		busy := tc.records(g, "busy", "in", 2)[0].rec.Busy
		g.Expect(busy).To(BeNumerically("<", 0.2), "claims waiting for messages")
	}).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	r.stop(t)
}

// TestClaimForwardReleasesWithStuckProducer: the broker answers no produce request, so the
// first pipeline's claims wait for its window (10 messages) on their own goroutines. A
// second pipeline joins and one of the two partitions moves to it: the claim's wait must end
// with the new assignment, the partition drain (its messages written and unanswered are given
// up after the 2s drain timeout) and the second pipeline take it, well within the rebalance
// timeout, after which sarama would end the first pipeline's whole session. Once the broker
// answers, nothing is lost and the group commits the end of the input.
func TestClaimForwardReleasesWithStuckProducer(t *testing.T) {
	g := NewWithT(t)
	const n = 400
	tc := newTestCluster(t, map[string]int32{"in": 2, "out": 2})
	tc.produce(input{topic: "in", n: n, keys: 20, partitions: 2}, 0, n)
	release := make(chan struct{})
	tc.holdProduce("out", func() { <-release })
	opts := []Option{WithProducerWindow(10), WithDrainTimeout(2 * time.Second), WithShutdownTimeout(time.Second)}
	a := start(t, specJSON(t, tc.baseSpec("stuck")), opts...)
	inFlight := func(r *running) func() float64 {
		return func() float64 { return scraped(t, r.p.metrics, "kpipe_messages_in_flight", "") }
	}
	g.Eventually(inFlight(a)).WithTimeout(time.Minute).Should(BeNumerically(">=", 10), "the window never filled")

	joined := time.Now()
	b := start(t, specJSON(t, tc.baseSpec("stuck")), opts...)
	// 8s: below the tests' rebalance timeout (10s, fastGroup).
	g.Eventually(inFlight(b)).WithTimeout(8*time.Second).Should(BeNumerically(">", 0),
		"the second pipeline took in nothing of the moved partition within 8s")
	t.Logf("the second pipeline took in messages %.1fs after joining", time.Since(joined).Seconds())
	g.Expect(a.p.sessions.Load()).To(Equal(int32(1)), "the first pipeline's session ended")

	close(release)
	out := tc.readAll("out", n, 2*time.Minute)
	tc.expectCommittedAtEnd(g, "stuck", "in")
	a.stop(t)
	b.stop(t)
	checkAllPresent(t, out, n)
}

// TestClaimForwardDeadLetters: the forward topic refuses every write (an error sarama does not
// retry), so each message the claims forwarded is retried by the producer up to
// retry.maxAttempts (3) and then written to the dead-letter topic with its source and
// attempts; the group commits the end of the input only once they all are.
func TestClaimForwardDeadLetters(t *testing.T) {
	g := NewWithT(t)
	const n = 300
	tc := newTestCluster(t, map[string]int32{"in": 3, "out": 3, "dlq": 1})
	tc.produce(input{topic: "in", n: n, keys: 30, partitions: 3}, 0, n)
	tc.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "out", Err: kerr.TopicAuthorizationFailed, Count: -1})
	spec := tc.baseSpec("fwdlq")
	spec["deadLetter"] = map[string]any{"topic": "dlq"}
	r := start(t, specJSON(t, spec))
	dead := tc.readAll("dlq", n, 2*time.Minute)
	tc.expectCommittedAtEnd(g, "fwdlq", "in")
	r.stop(t)
	checkAllPresent(t, dead, n)
	for _, rec := range dead {
		g.Expect(rec.headers[HeaderAttempts]).To(Equal("3"), "value %d", rec.value)
		g.Expect(rec.headers[HeaderSourceTopic]).To(Equal("in"), "value %d", rec.value)
	}
	g.Expect(tc.countOutput("out")).To(BeZero())
}
