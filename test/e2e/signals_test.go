package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers"
	"github.com/kpipe-io/kpipe/internal/telemetry"
)

// What the operator makes of what the pods report (docs/scaling.md, "What the pods report"),
// with every replica a real `kpipe run` process.

func condition(kp *kpipev1.KafkaPipeline, typ string) metav1.Condition {
	for _, c := range kp.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{Type: typ, Status: "Absent"}
}

func deletePipeline(name string) {
	out, err := h.Env.Kubectl(ctx, "delete", "kafkapipeline", name, "-n", ns, "--wait=false")
	Expect(err).NotTo(HaveOccurred(), out)
}

var _ = Describe("a pipeline with minReplicas 1 resting in its idle penalty", func() {
	It("is Idle (Resting), not Stalled, while lag waits for the penalty to end", func() {
		const penalty = 25 * time.Second
		pk := types.NamespacedName{Namespace: ns, Name: "rest"}
		apply(fmt.Sprintf(`apiVersion: kpipe.io/v1alpha1
kind: KafkaPipeline
metadata: {name: rest, namespace: %s}
spec:
  kafka: {bootstrapServers: [%q]}
  topics: [rest]
  group: rest
  initialOffset: Earliest
  idle: {window: 2s, penalty: %s}
  processor: {forward: {topic: rest-out}}
  scaling: {minReplicas: 1, maxReplicas: 1, pollInterval: 1s}
`, ns, h.Kafka.Addrs[0], penalty))
		DeferCleanup(deletePipeline, "rest")

		// The one replica joins, finds nothing for the idle window, and leaves the group for
		// its penalty while its process keeps running (and ready).
		Eventually(func(g Gomega) {
			kp := pipeline(pk)
			idle := condition(kp, kpipev1.ConditionIdle)
			g.Expect(idle.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(idle.Reason).To(Equal(controllers.ReasonResting), idle.Message)
			g.Expect(kp.Status.ReadyReplicas).To(BeEquivalentTo(1))
			g.Expect(h.Runner.Processes(pk)).To(HaveLen(1))
		}).Should(Succeed())
		restingSince := time.Now()

		// Messages arrive while it rests: the partitions have lag and committed offsets that
		// stand still for more than the stall threshold (6 polls).
		Expect(h.Kafka.ProduceValues(ctx, "rest", 0, 40, key)).To(Succeed())
		time.Sleep(8 * time.Second)
		Expect(time.Since(restingSince)).To(BeNumerically("<", penalty), "the test outlasted the penalty: nothing checked")
		kp := pipeline(pk)
		Expect(condition(kp, kpipev1.ConditionStalled).Status).To(Equal(metav1.ConditionFalse), "%+v", condition(kp, kpipev1.ConditionStalled))
		Expect(condition(kp, kpipev1.ConditionIdle).Reason).To(Equal(controllers.ReasonResting))

		// After the penalty the replica joins again and works the lag off.
		Eventually(func(g Gomega) {
			expectForwarded(g, "rest-out", 40)
			g.Expect(pipeline(pk).Status.Lag).To(BeZero())
		}).Should(Succeed())
		Expect(condition(pipeline(pk), kpipev1.ConditionStalled).Status).To(Equal(metav1.ConditionFalse))
	})
})

// slowServer answers each POST after hold, or at once once released.
func slowServer(hold time.Duration) (url string, release func()) {
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(hold):
		case <-done:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	}))
	return srv.URL, func() { close(done); srv.Close() }
}

// writesTelemetryWithin reports whether the group's committed offsets carry a kpipe
// telemetry record within the time.
func writesTelemetryWithin(group string, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		md, err := h.Kafka.CommittedMetadata(ctx, group)
		if err != nil {
			continue // the group has not committed yet
		}
		for _, ps := range md {
			for _, m := range ps {
				if _, err := telemetry.Decode(m); err == nil {
					return true
				}
			}
		}
	}
	return false
}

var _ = Describe("a slow handler", func() {
	It("is reported as slow, not stalled, and its lag keeps counting in the scaling decision", func() {
		// Each message takes 40s, far past the stall threshold (6 polls of 1s): committed
		// offsets stand still while the workers are busy.
		url, release := slowServer(40 * time.Second)
		DeferCleanup(release)
		pk := types.NamespacedName{Namespace: ns, Name: "slow"}
		Expect(h.Kafka.ProduceValues(ctx, "slow", 0, 40, key)).To(Succeed()) // 10 a partition, by key
		apply(fmt.Sprintf(`apiVersion: kpipe.io/v1alpha1
kind: KafkaPipeline
metadata: {name: slow, namespace: %s}
spec:
  kafka: {bootstrapServers: [%q]}
  topics: [slow]
  group: slow
  initialOffset: Earliest
  pool: {size: 2}
  processor: {http: {url: %q, timeout: 2m}}
  scaling: {minReplicas: 1, maxReplicas: 4, lagPerReplica: 10, pollInterval: 1s, scaleDownStabilization: 2s}
`, ns, h.Kafka.Addrs[0], url))
		DeferCleanup(deletePipeline, "slow")

		Eventually(func(g Gomega) {
			g.Expect(pipeline(pk).Status.DesiredReplicas).To(BeEquivalentTo(partitions))
			g.Expect(h.Runner.Processes(pk)).To(HaveLen(partitions))
		}).Should(Succeed())
		// The replicas write their telemetry record with every commit (docs/runtime.md):
		// without it a slow handler could not be told from a stuck one.
		Expect(writesTelemetryWithin("slow", 20*time.Second)).To(BeTrue(), "the replicas' commits carry a telemetry record")
		Eventually(func(g Gomega) {
			stalled := condition(pipeline(pk), kpipev1.ConditionStalled)
			g.Expect(stalled.Reason).To(Equal(controllers.ReasonPartitionsSlow), stalled.Message)
			g.Expect(stalled.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(stalled.Message).To(ContainSubstring("slow/"))
		}).Should(Succeed())
		// Slow for longer than the stall threshold and the scale-down stabilization: the
		// lag still asks for, and keeps, a replica per partition.
		time.Sleep(8 * time.Second)
		kp := pipeline(pk)
		md, _ := h.Kafka.CommittedMetadata(ctx, "slow")
		Expect(condition(kp, kpipev1.ConditionStalled).Status).To(Equal(metav1.ConditionFalse), "%+v; records at %s: %v; scale events %v",
			condition(kp, kpipev1.ConditionStalled), time.Now().Format(time.RFC3339Nano), md, scaleEvents("slow"))
		Expect(kp.Status.DesiredReplicas).To(BeEquivalentTo(partitions))
		Expect(kp.Status.Lag).To(BeNumerically(">", 0))
		Expect(h.Runner.Processes(pk)).To(HaveLen(partitions))
	})
})
