package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers"
)

const crdName = "kafkapipelines.kpipe.io"

// stabilizationPath is where the schema of spec.scaling.scaleDownStabilization sits in a
// CRD version.
var stabilizationPath = []string{"schema", "openAPIV3Schema", "properties", "spec", "properties", "scaling",
	"properties", "scaleDownStabilization"}

// setStabilizationSchema replaces the schema of spec.scaling.scaleDownStabilization in every
// version of the installed CRD (nil: a bare string) and returns the one it replaced.
func setStabilizationSchema(schema map[string]any) map[string]any {
	ctx := context.Background()
	var old map[string]any
	Eventually(func(g Gomega) {
		crd := &unstructured.Unstructured{}
		crd.SetAPIVersion("apiextensions.k8s.io/v1")
		crd.SetKind("CustomResourceDefinition")
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: crdName}, crd)).To(Succeed())
		versions, _, err := unstructured.NestedSlice(crd.Object, "spec", "versions")
		g.Expect(err).NotTo(HaveOccurred())
		for _, v := range versions {
			v := v.(map[string]any)
			old, _, _ = unstructured.NestedMap(v, stabilizationPath...)
			replacement := schema
			if replacement == nil {
				replacement = map[string]any{"type": "string"}
			}
			g.Expect(unstructured.SetNestedMap(v, replacement, stabilizationPath...)).To(Succeed())
		}
		g.Expect(unstructured.SetNestedSlice(crd.Object, versions, "spec", "versions")).To(Succeed())
		g.Expect(k8s.Update(ctx, crd)).To(Succeed())
	}).Should(Succeed())
	return old
}

// patchStabilization sets spec.scaling.scaleDownStabilization through an untyped merge patch.
func patchStabilization(key types.NamespacedName, value string, opts ...client.PatchOption) error {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(kpipev1.GroupVersion.WithKind("KafkaPipeline"))
	u.SetNamespace(key.Namespace)
	u.SetName(key.Name)
	patch := client.RawPatch(types.MergePatchType,
		[]byte(`{"spec":{"scaling":{"scaleDownStabilization":"`+value+`"}}}`))
	return k8s.Patch(context.Background(), u, patch, opts...)
}

// One stored object the operator cannot decode must not stop the others: the API server
// refuses 9999999h now (it overflows metav1.Duration), so the test stores it the way a CRD
// change would, with the schema loosened for a moment.
var _ = Describe("a pipeline whose stored spec does not decode", func() {
	It("is Stalled alone, keeps its Deployment, and another namespace's pipeline is reconciled within one poll", func() {
		ctx := context.Background()
		nsA, nsB := newNamespace(), newNamespace()
		bad := newPipeline(nsA, "undecodable", []string{"orders"})
		badKey := client.ObjectKeyFromObject(bad)
		Expect(k8s.Create(ctx, bad)).To(Succeed())
		var before int64
		Eventually(func(g Gomega) {
			g.Expect(condition(getPipeline(g, badKey), kpipev1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
			before = getDeployment(g, badKey).Generation
		}).Should(Succeed())

		schema := setStabilizationSchema(nil)
		restored := false
		restore := func() {
			if !restored {
				setStabilizationSchema(schema)
				restored = true
			}
		}
		DeferCleanup(func() {
			restore()
			Expect(client.IgnoreNotFound(k8s.Delete(ctx, bad))).To(Succeed())
		})
		Eventually(func() error { return patchStabilization(badKey, "9999999h") }).Should(Succeed())
		restore()
		Eventually(func() error {
			return patchStabilization(badKey, "9999998h", client.DryRunAll)
		}).ShouldNot(Succeed(), "the schema refuses the value again")

		const poll = 10 * time.Second
		good := newPipeline(nsB, "decodable", []string{"orders"}, func(kp *kpipev1.KafkaPipeline) {
			kp.Spec.Scaling.PollInterval = dur(poll)
		})
		Expect(k8s.Create(ctx, good)).To(Succeed())
		Eventually(func(g Gomega) {
			getDeployment(g, client.ObjectKeyFromObject(good))
			g.Expect(condition(getPipeline(g, client.ObjectKeyFromObject(good)), kpipev1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		}).WithTimeout(poll).Should(Succeed(), "the good pipeline is reconciled within one poll")

		Eventually(func(g Gomega) {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(kpipev1.GroupVersion.WithKind("KafkaPipeline"))
			g.Expect(k8s.Get(ctx, badKey, u)).To(Succeed())
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			g.Expect(conds).To(ContainElement(And(
				HaveKeyWithValue("type", kpipev1.ConditionStalled), HaveKeyWithValue("status", "True"),
				HaveKeyWithValue("reason", controllers.ReasonSpecUndecodable),
				HaveKeyWithValue("message", ContainSubstring(`spec.scaling.scaleDownStabilization: time: invalid duration "9999999h"`)))))
			g.Expect(conds).To(ContainElement(And(
				HaveKeyWithValue("type", kpipev1.ConditionReady), HaveKeyWithValue("status", "False"),
				HaveKeyWithValue("reason", controllers.ReasonSpecUndecodable))))
		}).Should(Succeed())
		Eventually(func(g Gomega) bool {
			return hasEvent(eventsFor(g, nsA, bad.Name), controllers.ReasonSpecUndecodable, "scaleDownStabilization")
		}).Should(BeTrue(), "one Warning event")
		Consistently(func(g Gomega) {
			g.Expect(getDeployment(g, badKey).Generation).To(Equal(before), "the Deployment is left as it is")
		}).WithTimeout(2 * time.Second).Should(Succeed())
	})
})
