package runtime

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	. "github.com/onsi/gomega"
)

// TestProducerWindowBoundsUnacked holds every produce request to the output topic
// unanswered: the pipeline takes in no more than its producer window plus the pool
// (buffer + size) and commits nothing, since nothing was acknowledged. Once the broker
// answers, every message reaches the output and the group commits the end of the input.
func TestProducerWindowBoundsUnacked(t *testing.T) {
	g := NewWithT(t)
	const (
		n      = 2000
		window = 40
		pool   = 8 + 16 // baseSpec: size 8, buffer 16
	)
	tc := newTestCluster(t, map[string]int32{"in": 3, "out": 3})
	tc.produce(input{topic: "in", n: n, keys: 60, partitions: 3}, 0, n)
	release := make(chan struct{})
	tc.c.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		tc.c.KeepControl()
		for _, topic := range r.(*kmsg.ProduceRequest).Topics {
			if topic.Topic == "out" {
				tc.c.SleepControl(func() { <-release })
			}
		}
		return nil, nil, false
	})

	a := start(t, specJSON(t, tc.baseSpec("window")), WithProducerWindow(window))
	inFlight := func() float64 { return scraped(t, a.p.metrics, "kpipe_messages_in_flight", "") }
	g.Eventually(inFlight).WithTimeout(time.Minute).Should(BeNumerically(">=", window),
		"the window never filled")
	// Long enough for several periodic commits (200 ms) and for the pipeline to take in
	// more, were the window not enforced.
	g.Consistently(inFlight).WithTimeout(2 * time.Second).Should(BeNumerically("<=", window+pool))
	for p, o := range tc.committed("window", "in", 3) {
		g.Expect(o).To(BeNumerically("<=", 0), "partition %d committed past unacknowledged messages", p)
	}

	close(release)
	out := tc.readAll("out", n, 2*time.Minute)
	tc.expectCommittedAtEnd(g, "window", "in")
	a.stop(t)
	checkAllPresent(t, out, n)
}
