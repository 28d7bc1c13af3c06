package controllers_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

var _ = Describe("spec.disruptionBudget", func() {
	ctx := context.Background()

	It("keeps a PodDisruptionBudget over the pipeline's pods while it is set, and removes it after", func() {
		ns := newNamespace()
		key := types.NamespacedName{Namespace: ns, Name: "drained"}
		Expect(k8s.Create(ctx, newPipeline(ns, key.Name, []string{"orders"}, func(kp *kpipev1.KafkaPipeline) {
			kp.Spec.Scaling.Mode = kpipev1.ScalingManual
			kp.Spec.DisruptionBudget = &kpipev1.DisruptionBudgetSpec{MaxUnavailable: intstr.FromInt32(1)}
		}))).To(Succeed())

		pdb := &policyv1.PodDisruptionBudget{}
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, key, pdb)).To(Succeed())
			g.Expect(pdb.Spec.MaxUnavailable).To(HaveValue(Equal(intstr.FromInt32(1))))
			g.Expect(pdb.Spec.Selector.MatchLabels).To(Equal(getDeployment(g, key).Spec.Selector.MatchLabels))
			g.Expect(pdb.OwnerReferences).To(HaveLen(1))
			g.Expect(pdb.OwnerReferences[0].Kind).To(Equal("KafkaPipeline"))
		}).Should(Succeed())

		kp := &kpipev1.KafkaPipeline{}
		// Patches, not Updates: the controller writes status meanwhile, and an Update would
		// fail on its resourceVersion.
		Expect(k8s.Get(ctx, key, kp)).To(Succeed())
		patch := client.MergeFrom(kp.DeepCopy())
		kp.Spec.DisruptionBudget.MaxUnavailable = intstr.FromString("50%")
		Expect(k8s.Patch(ctx, kp, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, key, pdb)).To(Succeed())
			g.Expect(pdb.Spec.MaxUnavailable).To(HaveValue(Equal(intstr.FromString("50%"))))
		}).Should(Succeed())

		Expect(k8s.Get(ctx, key, kp)).To(Succeed())
		patch = client.MergeFrom(kp.DeepCopy())
		kp.Spec.DisruptionBudget = nil
		Expect(k8s.Patch(ctx, kp, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			err := k8s.Get(ctx, key, &policyv1.PodDisruptionBudget{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the budget is still there: %v", err)
		}).Should(Succeed())
	})
})
