package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kpipe-io/kpipe/controllers/scaling"
	"github.com/kpipe-io/kpipe/internal/telemetry"
)

// spec.scaling.lagTimeTarget (docs/scaling.md, "Lag time target") with every replica a real
// `kpipe run` process: the capacity the operator plans with comes from the telemetry records
// the pods write into their commits, measured on a handler of a known cost per message.

// costlyService answers each POST after a fixed cost, as a sink of known speed, and counts
// the values it received.
type costlyService struct {
	URL  string
	mu   sync.Mutex
	seen map[string]int
}

func newCostlyService(cost time.Duration) *costlyService {
	s := &costlyService{seen: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(cost):
		case <-r.Context().Done():
			return
		}
		s.mu.Lock()
		s.seen[string(body)]++
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	s.URL = srv.URL
	DeferCleanup(srv.Close)
	return s
}

// missing is how many of the values [0, n) the service never received, and the duplicates.
func (s *costlyService) missing(n int) (missing, dups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range n {
		c := s.seen[fmt.Sprintf("%08d", i)]
		if c == 0 {
			missing++
		} else {
			dups += c - 1
		}
	}
	return missing, dups
}

// steadyProducer produces perTick values every tick, from value from on, until stopped; stop
// returns the end of the values produced (from + their count).
func steadyProducer(topic string, from, perTick int, tick time.Duration) (stop func() int) {
	quit, done := make(chan struct{}), make(chan error, 1)
	next := from
	go func() {
		defer GinkgoRecover()
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-quit:
				done <- nil
				return
			case <-t.C:
			}
			if err := h.Kafka.ProduceValues(ctx, topic, next, next+perTick, key); err != nil {
				done <- err
				return
			}
			next += perTick
		}
	}()
	var once sync.Once
	return func() int {
		once.Do(func() { close(quit); Expect(<-done).To(Succeed(), "the steady producer") })
		return next
	}
}

// capacities samples, every 500ms until stopped, the per-replica capacity the operator
// computes (scaling.MeasuredCapacity) from the telemetry records the group's members commit.
func capacities(group string) (stop func() []float64) {
	quit, done := make(chan struct{}), make(chan struct{})
	var seen []float64
	go func() {
		defer GinkgoRecover()
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(500 * time.Millisecond):
			}
			md, err := h.Kafka.CommittedMetadata(ctx, group)
			if err != nil {
				continue // no commit yet
			}
			recs := map[scaling.TopicPartition]*telemetry.Record{}
			for topic, ps := range md {
				for p, m := range ps {
					if r, err := telemetry.Decode(m); err == nil {
						recs[scaling.TopicPartition{Topic: topic, Partition: p}] = &r
					}
				}
			}
			hp := scaling.HealthParams{Now: time.Now(), StaleAfter: 5 * time.Second}
			if c := scaling.MeasuredCapacity(recs, hp); c > 0 {
				seen = append(seen, c)
			}
		}
	}()
	return func() []float64 { close(quit); <-done; return seen }
}

// The numbers of the spec. What each rule asks for at the start, lag 4000:
//   - lagPerReplica alone: ceil(4000 / 10 000) = 1 replica, and the produce rate keeps 1:
//     20 msg/s x 1.2 (the headroom of a measured capacity) = 24 <= 80.
//   - lagTimeTarget 10s: 4000/10 + 20 = 420 msg/s at <= 80 msg/s a replica: 6, capped at the
//     4 partitions. It asks for 4 while the lag is above 1 400 (there, 1400/10 + 20 = 160
//     msg/s: 40 a partition, and 2 replicas of 2 partitions each manage 80), which lasts well
//     past the pods' first records (one replica works off at most 60 msg/s of the backlog), so
//     4 is the count to expect.
//
// Without the target the pipeline stays at 1 replica and drains in about a minute.
const (
	timedTopic     = "timed"
	timedCost      = 25 * time.Millisecond // per message, at the service
	timedWorkers   = 2                     // pool.size: a replica processes at most 2/25ms = 80 msg/s
	timedBacklog   = 4000
	timedPerTick   = 10 // every 500ms: 20 msg/s
	timedLagPer    = 10_000
	timedTarget    = 10 * time.Second
	timedStabilize = 10 * time.Second
)

func applyTimed(url string) {
	apply(fmt.Sprintf(`apiVersion: kpipe.io/v1alpha1
kind: KafkaPipeline
metadata: {name: timed, namespace: %s}
spec:
  kafka: {bootstrapServers: [%q]}
  topics: [%s]
  group: timed
  initialOffset: Earliest
  pool: {size: %d}
  processor: {http: {url: %q}}
  scaling:
    minReplicas: 1
    maxReplicas: 10
    lagPerReplica: %d
    lagTimeTarget: %s
    pollInterval: 1s
    scaleDownStabilization: %s
`, ns, h.Kafka.Addrs[0], timedTopic, timedWorkers, url, timedLagPer, timedTarget, timedStabilize))
	DeferCleanup(deletePipeline, "timed")
}

var _ = Describe("a lag time target on real pods", func() {
	It("scales past what lagPerReplica asks, on the capacity the pods measure, and brings the lag under the target", func() {
		pk := types.NamespacedName{Namespace: ns, Name: "timed"}
		Expect(h.Kafka.CreateTopic(ctx, timedTopic, partitions)).To(Succeed())
		svc := newCostlyService(timedCost)
		Expect(h.Kafka.ProduceValues(ctx, timedTopic, 0, timedBacklog, key)).To(Succeed())
		stop := steadyProducer(timedTopic, timedBacklog, timedPerTick, 500*time.Millisecond)
		DeferCleanup(func() { stop() })
		s := sample(pk)
		DeferCleanup(s.close)
		caps := capacities("timed")
		applyTimed(svc.URL)

		expectScaledForTarget(pk, timedTarget)
		expectLagUnderTarget(pk, timedTarget)
		maxReplicas, maxProcs, seq := s.get()
		Expect(maxReplicas).To(BeEquivalentTo(partitions), "replicas seen: %v", seq)
		Expect(maxProcs).To(Equal(partitions), "the runner ran a kpipe run process for each replica")
		// The capacity the pods' records give (the operator's own computation on them) never
		// exceeds what 2 workers at 25ms a message can do, 80 msg/s; 15% over it at most for a
		// window's edges (two messages started in the previous one, in a window of 250ms).
		// Records that mixed partitions given up or taken on read up to 161.
		measured := caps()
		GinkgoWriter.Printf("capacities read from the records: %.0f\n", measured)
		Expect(measured).NotTo(BeEmpty(), "the pods' records gave a capacity")
		Expect(slices.Max(measured)).To(BeNumerically("<=", 1.15*timedWorkers/timedCost.Seconds()), "%.0f", measured)

		produced := stop()
		dups := expectAllConsumed(svc, produced)
		GinkgoWriter.Printf("lag time target: %d messages, %d duplicates, replicas %v\n", produced, dups, seq)
	})
})

// expectAllConsumed waits for every value of [0, produced) to reach the service and for the
// group to commit them all; it returns the duplicates.
func expectAllConsumed(svc *costlyService, produced int) (dups int) {
	Eventually(func(g Gomega) {
		committed, err := h.Kafka.Committed(ctx, "timed")
		g.Expect(err).NotTo(HaveOccurred())
		var total int64
		for _, o := range committed[timedTopic] {
			total += o
		}
		g.Expect(total).To(BeEquivalentTo(produced), "the group committed every offset")
		var missing int
		missing, dups = svc.missing(produced)
		g.Expect(missing).To(BeZero(), "values of [0, %d) the service never received", produced)
	}).Should(Succeed())
	return dups
}

// expectScaledForTarget waits for the scale-up the time target asks for: the partition cap,
// with the lag still there (status.lagSeconds above 0) and the reason quoting the target.
func expectScaledForTarget(pk types.NamespacedName, target time.Duration) {
	Eventually(func(g Gomega) {
		kp := pipeline(pk)
		g.Expect(kp.Status.DesiredReplicas).To(BeEquivalentTo(partitions), "lagPerReplica alone asks for 1")
		g.Expect(kp.Status.LagSeconds).To(BeNumerically(">", 0), "status.lagSeconds while the backlog waits")
		up := eventWith(scaleEvents(pk.Name), scaling.ReasonScaledUp)
		g.Expect(up).NotTo(BeNil())
		g.Expect(up.Note).To(ContainSubstring("lagTimeTarget %s", target))
		GinkgoWriter.Printf("scaled up: %s\n", up.Note)
	}).WithTimeout(60 * time.Second).Should(Succeed())
}

// expectLagUnderTarget waits for the backlog to be worked off: back at one replica (the
// produce rate's keep-up count) once the stabilization window passed, with the status written
// then showing the oldest waiting message under the target while the traffic goes on.
func expectLagUnderTarget(pk types.NamespacedName, target time.Duration) {
	Eventually(func(g Gomega) {
		kp := pipeline(pk)
		g.Expect(kp.Status.DesiredReplicas).To(BeEquivalentTo(1))
		g.Expect(kp.Status.LagSeconds).To(BeNumerically("<", target.Seconds()), "lag %d", kp.Status.Lag)
	}).WithTimeout(2 * time.Minute).Should(Succeed())
}
