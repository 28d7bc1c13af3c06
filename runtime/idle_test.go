package runtime

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestIdleClockCountsSessionsOnly: time outside a session is not idle; quiet time of
// earlier sessions is, until something is consumed.
func TestIdleClockCountsSessionsOnly(t *testing.T) {
	g := NewWithT(t)
	var c idleClock
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	g.Expect(c.quiet(at(90))).To(BeZero(), "no session yet")
	c.sessionStarted(at(100))
	g.Expect(c.quiet(at(110))).To(Equal(10 * time.Second))
	c.sessionEnded(at(120))
	g.Expect(c.quiet(at(500))).To(BeZero(), "between sessions")
	c.sessionStarted(at(500))
	g.Expect(c.quiet(at(505))).To(Equal(25*time.Second), "20s of the first session and 5s of this one")
	c.consumed(at(506))
	g.Expect(c.quiet(at(510))).To(Equal(4 * time.Second))
	c.sessionEnded(at(511))
	c.sessionStarted(at(600))
	g.Expect(c.quiet(at(601))).To(Equal(6 * time.Second))
}

// TestNoIdleWithoutSession: a replica that cannot join its group (here the coordinator
// refuses every JoinGroup) for several idle windows does not go idle; once it joins, it
// consumes the backlog.
func TestNoIdleWithoutSession(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 2, "out": 2})
	refuse := tc.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.JoinGroup}, Err: kerr.CoordinatorNotAvailable, Count: -1})
	in := input{topic: "in", n: 200, keys: 20, partitions: 2}
	tc.produce(in, 0, in.n)
	spec := tc.baseSpec("nosession")
	spec["idle"] = map[string]any{"window": "300ms", "penalty": "1m"}
	r := start(t, specJSON(t, spec))

	// Ten idle windows without a session.
	g.Consistently(func(g Gomega) {
		g.Expect(r.p.sessions.Load()).To(BeZero())
		g.Expect(r.p.idle.Load()).To(BeFalse(), "idle without a session")
	}).WithTimeout(3 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
	g.Expect(testutil.ToFloat64(r.p.metrics.idlePeriods)).To(BeZero())

	refuse.Remove()
	out := tc.readAll("out", in.n, time.Minute)
	checkAllPresent(t, out, in.n)
	r.stop(t)
}
