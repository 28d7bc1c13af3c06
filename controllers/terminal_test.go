package controllers_test

import (
	"context"
	"errors"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers"
	"github.com/kpipe-io/kpipe/controllers/lag"
	"github.com/kpipe-io/kpipe/controllers/manager"
)

// The API server refuses bad specs, so this path is reached with a spec that bypassed it: a
// fake client, which does not validate.
var _ = Describe("a bad spec", func() {
	It("is terminal: Stalled and not Ready, no Deployment, no Kafka", func() {
		scheme := manager.Scheme()
		kp := &kpipev1.KafkaPipeline{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "bad", Generation: 3},
			Spec: kpipev1.KafkaPipelineSpec{
				Kafka:     kpipev1.KafkaConnection{BootstrapServers: []string{"not a host"}},
				Topics:    []string{"orders"},
				Group:     "g",
				Processor: kpipev1.ProcessorSpec{Forward: &kpipev1.ForwardProcessor{Topic: "orders"}},
				Scaling:   kpipev1.ScalingSpec{LagPerReplica: ptr.To[int64](0)},
			},
		}
		c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(kp).WithStatusSubresource(kp).Build()
		r := &controllers.KafkaPipelineReconciler{Client: c, Image: testImage, Lag: lag.NewReader(lag.Options{})}
		key := types.NamespacedName{Namespace: "ns", Name: "bad"}
		res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key})
		Expect(errors.Is(err, reconcile.TerminalError(nil))).To(BeTrue(), "error %v", err)
		Expect(res).To(Equal(ctrl.Result{}))
		Expect(err.Error()).To(And(ContainSubstring("spec.kafka.bootstrapServers[0]"), ContainSubstring("spec.scaling.lagPerReplica"),
			ContainSubstring("spec.processor.forward.topic")))

		got := &kpipev1.KafkaPipeline{}
		Expect(c.Get(context.Background(), key, got)).To(Succeed())
		stalled := condition(got, kpipev1.ConditionStalled)
		Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		Expect(stalled.Reason).To(Equal(controllers.ReasonInvalidSpec))
		Expect(stalled.ObservedGeneration).To(Equal(int64(3)))
		Expect(condition(got, kpipev1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
		Expect(got.Status.ObservedGeneration).To(Equal(int64(3)))
		Expect(apierrors.IsNotFound(c.Get(context.Background(), key, &appsv1.Deployment{}))).To(BeTrue())
		Expect(r.Lag.Connections()).To(BeZero())
	})
})
