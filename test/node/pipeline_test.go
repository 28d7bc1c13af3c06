package node

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/render"
)

// managerImage is the image of the operator's pod, checked against its KPIPE_IMAGE.
func managerImage(g Gomega) string {
	var list corev1.PodList
	g.Expect(k8s.List(ctx, &list, client.InNamespace(operatorNS),
		client.MatchingLabels{"app.kubernetes.io/component": "manager"})).To(Succeed())
	g.Expect(list.Items).NotTo(BeEmpty())
	c := list.Items[0].Spec.Containers[0]
	for _, e := range c.Env {
		if e.Name == "KPIPE_IMAGE" {
			g.Expect(e.Value).To(Equal(c.Image), "KPIPE_IMAGE is the manager's own image")
		}
	}
	return c.Image
}

func installSpecs() bool {
	return Describe("kpipe installed with kubectl apply -k config/default", Ordered, func() {
		It("runs the manager from the one image setting, as a non-root user", func() {
			Expect(managerImage(Default)).To(Equal(image))
			var d appsv1.Deployment
			Expect(k8s.Get(ctx, types.NamespacedName{Namespace: operatorNS, Name: "kpipe-manager"}, &d)).To(Succeed())
			Expect(d.Spec.Template.Spec.ServiceAccountName).To(Equal("kpipe-manager"))
		})
	})
}

func autoscaleSpecs() bool {
	return Describe("an autoscaled pipeline on the node", Ordered, func() {
		const backlog = 20_000
		orders := types.NamespacedName{Namespace: appNS, Name: "orders"}
		var s *sampler

		BeforeAll(func() {
			Expect(kafka.produce("orders", 0, backlog)).To(Succeed())
			s = sample(orders)
			DeferCleanup(s.close)
			kubectlApply(pipelineManifest("orders", "orders", `  pool: {size: 4, ordering: Key}
  idle: {window: 6s, penalty: 8s}
  scaling: {minReplicas: 0, maxReplicas: 10, lagPerReplica: 100, pollInterval: 1s, scaleDownStabilization: 3s}
`))
		})

		It("scales up to the partition cap under a burst, in the restricted namespace, from the manager's image", func() {
			// kfake drains the burst in seconds, so the four pods need not all be ready at once:
			// the Deployment asks for four, four pods run, and at least one is ready.
			Eventually(func(g Gomega) {
				g.Expect(getPipeline(g, "orders").Status.Partitions).To(BeEquivalentTo(partitions))
				maxReplicas, maxReady, _, _ := s.get()
				g.Expect(maxReplicas).To(BeEquivalentTo(partitions), "the Deployment scaled to the partition count")
				g.Expect(maxReady).To(BeNumerically(">=", 1))
				g.Expect(s.podsSeen()).To(BeNumerically(">=", partitions), "four pods ran")
			}).Should(Succeed())
			maxReplicas, _, _, images := s.get()
			Expect(maxReplicas).To(BeEquivalentTo(partitions), "lag asked for %d replicas; the cap is the partition count", backlog/100)
			Expect(images).To(ConsistOf(managerImage(Default)), "pipeline pods run the manager's image")
		})

		It("drains the burst with nothing lost", func() {
			expectDrained("orders", "orders", backlog)
		})

		It("scales to zero after the idle window, through one replica", func() {
			Eventually(func(g Gomega) {
				var d appsv1.Deployment
				g.Expect(k8s.Get(ctx, orders, &d)).To(Succeed())
				g.Expect(*d.Spec.Replicas).To(BeZero())
				g.Expect(pods(g, "orders")).To(BeEmpty(), "every pod is gone")
			}).Should(Succeed())
			_, _, seq, _ := s.get()
			Expect(seq).To(ContainElement(BeEquivalentTo(1)), "4 -> 1 -> 0; seen %v", seq)
			Eventually(func(g Gomega) {
				g.Expect(meta.IsStatusConditionTrue(getPipeline(g, "orders").Status.Conditions, kpipev1.ConditionIdle)).To(BeTrue())
			}).Should(Succeed())
		})
	})
}

func manualSpecs() bool {
	return Describe("a manually scaled pipeline on the node", Ordered, func() {
		const chunk = 6_000
		sent := 0
		manifest := func(poolSize string) string {
			return pipelineManifest("payments", "payments", "  pool: {size: "+poolSize+"}\n  scaling: {mode: Manual}\n  replicas: 2\n")
		}
		// during sends the next chunk of traffic while do runs, then checks nothing was lost.
		during := func(do func()) {
			GinkgoHelper()
			wait := traffic("payments", sent, sent+chunk)
			time.Sleep(time.Second)
			do()
			Expect(wait()).To(Succeed())
			sent += chunk
			expectDrained("payments", "payments", sent)
		}

		BeforeAll(func() {
			kubectlApply(manifest("2"))
			Eventually(func(g Gomega) { readyPods(g, "payments", 2) }).Should(Succeed())
		})

		It("kill -9 of a pipeline container: the kubelet restarts it, nothing lost", func() {
			var victim corev1.Pod
			during(func() {
				victim = pods(Default, "payments")[0]
				killContainer(&victim)
			})
			Eventually(func(g Gomega) {
				var p corev1.Pod
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&victim), &p)).To(Succeed(), "the same pod, restarted in place")
				g.Expect(p.Status.ContainerStatuses[0].RestartCount).To(BeNumerically(">", victim.Status.ContainerStatuses[0].RestartCount))
				g.Expect(ready(&p)).To(BeTrue())
			}).Should(Succeed())
		})

		It("a pod deleted during traffic is replaced, nothing lost", func() {
			before := readyPods(Default, "payments", 2)
			during(func() { kubectl("delete", "pod", "-n", appNS, before[0], "--wait=false") })
			Eventually(func(g Gomega) {
				g.Expect(readyPods(g, "payments", 2)).NotTo(ContainElement(before[0]))
			}).Should(Succeed())
		})

		It("a spec change rolls the pods, nothing lost", func() {
			before := readyPods(Default, "payments", 2)
			during(func() { kubectlApply(manifest("3")) })
			Eventually(func(g Gomega) {
				after := readyPods(g, "payments", 2)
				g.Expect(after).NotTo(ContainElements(before[0]))
				g.Expect(after).NotTo(ContainElements(before[1]))
			}).Should(Succeed())
		})

		It("rotating the Secret rolls the pods onto the new credentials", func() {
			before := readyPods(Default, "payments", 2)
			during(func() {
				kubectlApply(`apiVersion: v1
kind: Secret
metadata: {name: kafka-user, namespace: shop}
stringData: {username: pipeline2, password: pipeline-2}
`)
			})
			Eventually(func(g Gomega) {
				after := readyPods(g, "payments", 2)
				g.Expect(after).NotTo(ContainElements(before[0]))
				g.Expect(after).NotTo(ContainElements(before[1]))
			}).Should(Succeed())
		})

		It("deleting the pipeline: the garbage collector removes its Deployment and pods", func() {
			kubectl("delete", "kafkapipeline", "payments", "-n", appNS, "--wait=false")
			Eventually(func(g Gomega) {
				var d appsv1.Deployment
				err := k8s.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "payments"}, &d)
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Deployment is gone (%v)", err)
				var list corev1.PodList
				g.Expect(k8s.List(ctx, &list, client.InNamespace(appNS), client.MatchingLabels(render.SelectorLabels("payments")))).To(Succeed())
				g.Expect(list.Items).To(BeEmpty(), "the pods are gone")
			}).Should(Succeed())
		})
	})
}
