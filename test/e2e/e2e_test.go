// Package e2e runs the whole loop: kfake, a control plane, the operator, and every replica as
// a real `kpipe run` process started by the local runner. It asserts what a user sees: the
// replicas, the status and events, and the messages on the topics.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/scaling"
	"github.com/kpipe-io/kpipe/test/harness"
)

const (
	ns         = "default"
	partitions = 4
)

var (
	h   *harness.Harness
	ctx context.Context
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "end to end")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter)))
	SetDefaultEventuallyTimeout(90 * time.Second)
	SetDefaultEventuallyPollingInterval(200 * time.Millisecond)
	ctx = context.Background()
	var err error
	h, err = harness.Start(ctx, harness.Options{
		Partitions: partitions,
		Topics:     []string{"orders", "orders-out", "payments", "payments-out", "rest", "rest-out", "slow"},
		Log:        GinkgoWriter,
	})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if h != nil {
		Expect(h.Stop()).To(Succeed())
	}
})

// apply writes a manifest and applies it with kubectl, as a user would.
func apply(manifest string) {
	f := filepath.Join(h.Env.Dir, fmt.Sprintf("m-%d.yaml", time.Now().UnixNano()))
	Expect(os.WriteFile(f, []byte(manifest), 0o600)).To(Succeed())
	out, err := h.Env.Kubectl(ctx, "apply", "-f", f)
	Expect(err).NotTo(HaveOccurred(), out)
}

func pipeline(key types.NamespacedName) *kpipev1.KafkaPipeline {
	var kp kpipev1.KafkaPipeline
	Expect(h.Client.Get(ctx, key, &kp)).To(Succeed())
	return &kp
}

// scaleEvents are the operator's Scale events for a pipeline, oldest first.
func scaleEvents(name string) []eventsv1.Event {
	var list eventsv1.EventList
	Expect(h.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Action == "Scale" {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b eventsv1.Event) int { return a.EventTime.Compare(b.EventTime.Time) })
	return out
}

func eventWith(events []eventsv1.Event, reason string) *eventsv1.Event {
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Reason == reason {
			return &events[i]
		}
	}
	return nil
}

func key(i int) string { return fmt.Sprintf("customer-%03d", i%200) }

// expectForwarded checks that every value in [0, n) is on the topic, and returns the
// number of duplicates.
func expectForwarded(g Gomega, topic string, n int) int {
	recs, err := h.Kafka.Records(ctx, topic)
	g.Expect(err).NotTo(HaveOccurred())
	seen := make(map[string]int, n)
	for _, r := range recs {
		seen[string(r.Value)]++
	}
	missing := 0
	for i := range n {
		if seen[fmt.Sprintf("%08d", i)] == 0 {
			missing++
		}
	}
	g.Expect(missing).To(BeZero(), "messages missing from %s", topic)
	return len(recs) - len(seen)
}

// sampler records the highest replica counts seen on a Deployment and its pipeline.
type sampler struct {
	mu                    sync.Mutex
	maxReplicas, maxReady int32
	maxProcs              int
	seq                   []int32 // distinct successive spec.replicas values
	stop                  chan struct{}
	done                  chan struct{}
}

func sample(key types.NamespacedName) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer GinkgoRecover()
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			var d appsv1.Deployment
			if h.Client.Get(ctx, key, &d) != nil || d.Spec.Replicas == nil {
				continue
			}
			s.mu.Lock()
			r := *d.Spec.Replicas
			s.maxReplicas = max(s.maxReplicas, r)
			s.maxReady = max(s.maxReady, d.Status.ReadyReplicas)
			s.maxProcs = max(s.maxProcs, len(h.Runner.Processes(key)))
			if len(s.seq) == 0 || s.seq[len(s.seq)-1] != r {
				s.seq = append(s.seq, r)
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *sampler) get() (maxReplicas int32, maxProcs int, seq []int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxReplicas, s.maxProcs, append([]int32(nil), s.seq...)
}

func (s *sampler) close() { close(s.stop); <-s.done }

var _ = Describe("an autoscaled forward pipeline", Ordered, func() {
	const (
		backlog       = 20_000
		wake          = 2_000
		stabilization = 3 * time.Second
		idleWindow    = 6 * time.Second
		penalty       = 8 * time.Second
	)
	orders := types.NamespacedName{Namespace: ns, Name: "orders"}
	var s *sampler

	BeforeAll(func() {
		Expect(h.Kafka.ProduceValues(ctx, "orders", 0, backlog, key)).To(Succeed())
		s = sample(orders)
		DeferCleanup(s.close)
		apply(fmt.Sprintf(`apiVersion: kpipe.io/v1alpha1
kind: KafkaPipeline
metadata: {name: orders, namespace: %s}
spec:
  kafka: {bootstrapServers: [%q]}
  topics: [orders]
  group: orders
  initialOffset: Earliest
  pool: {size: 4, ordering: Key}
  idle: {window: %s, penalty: %s}
  processor: {forward: {topic: orders-out}}
  scaling:
    minReplicas: 0
    maxReplicas: 10
    lagPerReplica: 100
    pollInterval: 1s
    scaleDownStabilization: %s
`, ns, h.Kafka.Addrs[0], idleWindow, penalty, stabilization))
	})

	It("scales up under the backlog to the partition cap, then drains to zero lag", func() {
		Eventually(func(g Gomega) {
			kp := pipeline(orders)
			g.Expect(kp.Status.DesiredReplicas).To(BeEquivalentTo(partitions))
			g.Expect(kp.Status.Partitions).To(BeEquivalentTo(partitions))
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			_, maxProcs, _ := s.get()
			g.Expect(maxProcs).To(Equal(partitions), "the runner ran four kpipe run processes")
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			kp := pipeline(orders)
			g.Expect(kp.Status.Lag).To(BeZero())
			committed, err := h.Kafka.Committed(ctx, "orders")
			g.Expect(err).NotTo(HaveOccurred())
			var total int64
			for _, o := range committed["orders"] {
				total += o
			}
			g.Expect(total).To(BeEquivalentTo(backlog), "the group committed every offset")
		}).Should(Succeed())
		maxReplicas, _, _ := s.get()
		Expect(maxReplicas).To(BeEquivalentTo(partitions), "lag asked for %d replicas; the cap is the partition count", backlog/100)
	})

	It("forwards every message, none lost", func() {
		Eventually(func(g Gomega) {
			dups := expectForwarded(g, "orders-out", backlog)
			GinkgoWriter.Printf("orders-out: %d messages, %d duplicates\n", backlog, dups)
		}).Should(Succeed())
	})

	It("scales down after the stabilization window, then to zero after the idle window", func() {
		Eventually(func(g Gomega) {
			var d appsv1.Deployment
			g.Expect(h.Client.Get(ctx, orders, &d)).To(Succeed())
			g.Expect(*d.Spec.Replicas).To(BeZero())
			g.Expect(h.Runner.Processes(orders)).To(BeEmpty(), "every kpipe run process was stopped")
		}).Should(Succeed())

		_, _, seq := s.get()
		Expect(seq).To(ContainElement(BeEquivalentTo(1)), "4 -> 1 -> 0: one replica stays until the idle window ends; seen %v", seq)
		events := scaleEvents("orders")
		down, zero := eventWith(events, scaling.ReasonScaledDown), eventWith(events, scaling.ReasonIdleToZero)
		Expect(down).NotTo(BeNil(), "a ScaledDown event: %v", events)
		Expect(zero).NotTo(BeNil(), "a ScaledToZero event: %v", events)
		Expect(down.Note).To(ContainSubstring("from 4 to 1"))
		Expect(zero.Note).To(ContainSubstring("to 0"))

		// 4 was recommended at least until the scale-up, so the scale-down comes no sooner than
		// the stabilization window after it; zero comes an idle window after idleness began.
		// The operator may be late by a poll, never early.
		up := eventWith(events, scaling.ReasonActivated)
		Expect(up).NotTo(BeNil())
		Expect(up.Note).To(ContainSubstring("to 4"))
		Expect(down.EventTime.Sub(up.EventTime.Time)).To(BeNumerically(">=", stabilization))
		kp := pipeline(orders)
		Expect(kp.Status.IdleSince).NotTo(BeNil())
		Expect(zero.EventTime.Sub(kp.Status.IdleSince.Time)).To(BeNumerically(">=", idleWindow-time.Second))
		Expect(meta.IsStatusConditionTrue(kp.Status.Conditions, kpipev1.ConditionIdle)).To(BeTrue())
	})

	It("honours the penalty at zero, then wakes on new traffic and forwards it", func() {
		zero := eventWith(scaleEvents("orders"), scaling.ReasonIdleToZero)
		Expect(zero).NotTo(BeNil())
		Expect(h.Kafka.ProduceValues(ctx, "orders", backlog, backlog+wake, key)).To(Succeed())

		var woke *eventsv1.Event
		Eventually(func(g Gomega) {
			woke = eventWith(scaleEvents("orders"), scaling.ReasonActivated)
			g.Expect(woke).NotTo(BeNil())
			g.Expect(woke.EventTime.After(zero.EventTime.Time)).To(BeTrue(), "an Activated event after the scale to zero")
		}).Should(Succeed())
		Expect(woke.EventTime.Sub(zero.EventTime.Time)).To(BeNumerically(">=", penalty), "woke before the penalty ended")

		Eventually(func(g Gomega) {
			expectForwarded(g, "orders-out", backlog+wake)
			g.Expect(pipeline(orders).Status.Lag).To(BeZero())
		}).Should(Succeed())
	})
})

var _ = Describe("a manually scaled pipeline", Ordered, func() {
	payments := types.NamespacedName{Namespace: ns, Name: "payments"}
	manifest := func(poolSize int) string {
		return fmt.Sprintf(`apiVersion: kpipe.io/v1alpha1
kind: KafkaPipeline
metadata: {name: payments, namespace: %s}
spec:
  kafka: {bootstrapServers: [%q]}
  topics: [payments]
  group: payments
  initialOffset: Earliest
  pool: {size: %d}
  processor: {forward: {topic: payments-out}}
  scaling: {mode: Manual}
  replicas: 2
`, ns, h.Kafka.Addrs[0], poolSize)
	}
	ready := func(g Gomega) []string {
		procs := h.Runner.Processes(payments)
		g.Expect(procs).To(HaveLen(2))
		kp := pipeline(payments)
		g.Expect(kp.Status.ReadyReplicas).To(BeEquivalentTo(2))
		return procs
	}

	It("rolls the processes when the spec changes", func() {
		apply(manifest(2))
		var before []string
		Eventually(func(g Gomega) { before = ready(g) }).Should(Succeed())
		var d appsv1.Deployment
		Expect(h.Client.Get(ctx, payments, &d)).To(Succeed())
		hash := d.Spec.Template.Annotations[kpipev1.ConfigHashAnnotation]
		Expect(hash).NotTo(BeEmpty())

		apply(manifest(3))
		Eventually(func(g Gomega) {
			g.Expect(h.Client.Get(ctx, payments, &d)).To(Succeed())
			g.Expect(d.Spec.Template.Annotations[kpipev1.ConfigHashAnnotation]).NotTo(Equal(hash))
			after := ready(g)
			for _, p := range after {
				g.Expect(before).NotTo(ContainElement(p), "process %s survived the roll", p)
			}
		}).Should(Succeed())

		// The new processes run the new configuration: messages still flow.
		Expect(h.Kafka.ProduceValues(ctx, "payments", 0, 1000, key)).To(Succeed())
		Eventually(func(g Gomega) { expectForwarded(g, "payments-out", 1000) }).Should(Succeed())
	})

	It("loses nothing when a process is killed mid-stream, and the runner restarts it", func() {
		const from, to, chunk = 1000, 31_000, 1000
		before := h.Runner.Stats().Restarts
		// Traffic keeps coming while a process dies: 1000 messages every 100ms for 3s.
		produced := make(chan error, 1)
		go func() {
			defer GinkgoRecover()
			for i := from; i < to; i += chunk {
				if err := h.Kafka.ProduceValues(ctx, "payments", i, i+chunk, key); err != nil {
					produced <- err
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			produced <- nil
		}()
		time.Sleep(time.Second) // a third of the way in, with commits behind the work done
		killed, err := h.Runner.Kill(payments)
		Expect(err).NotTo(HaveOccurred())
		Eventually(produced).WithTimeout(time.Minute).Should(Receive(BeNil()))

		Eventually(func(g Gomega) {
			g.Expect(h.Runner.Stats().Restarts).To(BeNumerically(">", before), "%s was restarted", killed)
			// Lag first: a failure then tells "not consumed yet" (lag left) from "skipped" (no lag,
			// messages missing), with the group's committed offsets to go by.
			committed, err := h.Kafka.Committed(ctx, "payments")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pipeline(payments).Status.Lag).To(BeZero(), "committed offsets %v", committed["payments"])
			dups := expectForwarded(g, "payments-out", to)
			GinkgoWriter.Printf("SIGKILL of %s mid-stream: nothing lost, %d duplicates among %d messages\n", killed, dups, to)
		}).Should(Succeed())
		Eventually(func(g Gomega) { ready(g) }).Should(Succeed())
	})

	It("stops every process when the KafkaPipeline is deleted", func() {
		out, err := h.Env.Kubectl(ctx, "delete", "kafkapipeline", "payments", "-n", ns)
		Expect(err).NotTo(HaveOccurred(), out)
		Eventually(func(g Gomega) {
			g.Expect(h.Runner.Processes(payments)).To(BeEmpty())
			var d appsv1.Deployment
			err := h.Client.Get(ctx, payments, &d)
			g.Expect(client.IgnoreNotFound(err)).To(Succeed())
			g.Expect(err).To(HaveOccurred(), "the Deployment is gone")
		}).Should(Succeed())
		Expect(strings.Join(h.Runner.Processes(payments), ",")).To(BeEmpty())
	})
})
