package controllers_test

import (
	"context"
	"strconv"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers"
	"github.com/kpipe-io/kpipe/controllers/render"
	kpiperuntime "github.com/kpipe-io/kpipe/runtime"
)

// A pod whose runtime refuses the pod contract crash-loops; the operator reads the refusal from
// the pod's termination message into the pipeline's Ready condition and a Warning event.
// envtest runs no kubelet: the test writes the pod and its status as the kubelet would.
var _ = Describe("a pod that refuses the pod contract", func() {
	It("says why on the pipeline, naming both versions, and Ready returns once it is gone", func() {
		ctx := context.Background()
		ns := newNamespace()
		kp := newPipeline(ns, "refused", []string{"orders"}, func(kp *kpipev1.KafkaPipeline) {
			kp.Spec.Scaling.Mode = kpipev1.ScalingManual
			kp.Spec.Replicas = ptr.To[int32](1)
		})
		key := client.ObjectKeyFromObject(kp)
		kube.SetUnready(key, true)
		DeferCleanup(kube.SetUnready, key, false)
		Expect(k8s.Create(ctx, kp)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(condition(getPipeline(g, key), kpipev1.ConditionReady).Reason).To(Equal(controllers.ReasonReplicasNotReady))
		}).Should(Succeed())

		// The refusal as the runtime of an image one contract behind would write it.
		required := kpipev1.PodContractVersion + 1
		refusal := kpiperuntime.CheckContract(strconv.Itoa(required)).Error()
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}})).To(Succeed())
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "refused-7d4b9-x2x4q", Labels: render.Labels(kp.Name)},
			Spec: corev1.PodSpec{
				AutomountServiceAccountToken: new(false),
				Containers:                   []corev1.Container{{Name: render.ContainerName, Image: "registry.example/old-handler:1"}},
			},
		}
		Expect(k8s.Create(ctx, pod)).To(Succeed())
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
			Name: render.ContainerName, Image: "registry.example/old-handler:1", RestartCount: 3,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 1, Reason: "Error", Message: refusal,
			}},
		}}
		Expect(k8s.Status().Update(ctx, pod)).To(Succeed())

		Eventually(func(g Gomega) {
			ready := condition(getPipeline(g, key), kpipev1.ConditionReady)
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(controllers.ReasonPodContractUnsupported))
			g.Expect(ready.Message).To(ContainSubstring("pod " + pod.Name))
			g.Expect(ready.Message).To(ContainSubstring("requires pod contract " + strconv.Itoa(required)))
			g.Expect(ready.Message).To(ContainSubstring("implements pod contract " + strconv.Itoa(kpipev1.PodContractVersion)))
			g.Expect(hasEvent(eventsFor(g, ns, kp.Name), controllers.ReasonPodContractUnsupported, "requires pod contract")).To(BeTrue())
		}).Should(Succeed())

		Expect(k8s.Delete(ctx, pod)).To(Succeed())
		kube.SetUnready(key, false)
		Eventually(func(g Gomega) {
			g.Expect(condition(getPipeline(g, key), kpipev1.ConditionReady).Reason).To(Equal(controllers.ReasonReady))
		}).Should(Succeed())
	})
})
