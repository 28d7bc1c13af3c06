package controllers

import (
	"context"
	"fmt"

	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/render"
)

// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete

// applyDisruptionBudget keeps the pipeline's PodDisruptionBudget in step with
// spec.disruptionBudget: applied when set (and only when it differs from the cached one, so a
// steady pipeline costs no request), deleted when unset. Budgets are read from the cache that
// Owns fills.
func (r *KafkaPipelineReconciler) applyDisruptionBudget(ctx context.Context, kp *kpipev1.KafkaPipeline) error {
	want := render.PodDisruptionBudget(kp)
	cur := &policyv1.PodDisruptionBudget{}
	switch err := r.Get(ctx, client.ObjectKeyFromObject(kp), cur); {
	case apierrors.IsNotFound(err):
		cur = nil
	case err != nil:
		return fmt.Errorf("get poddisruptionbudget: %w", err)
	}
	if want == nil {
		if cur == nil || !metav1.IsControlledBy(cur, kp) {
			return nil
		}
		if err := client.IgnoreNotFound(r.Delete(ctx, cur)); err != nil {
			return fmt.Errorf("delete poddisruptionbudget: %w", err)
		}
		return nil
	}
	if cur != nil && equality.Semantic.DeepEqual(cur.Spec.MaxUnavailable, want.Spec.MaxUnavailable) &&
		equality.Semantic.DeepEqual(cur.Spec.Selector, want.Spec.Selector) && metav1.IsControlledBy(cur, kp) {
		return nil
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(want)
	if err != nil {
		return fmt.Errorf("convert poddisruptionbudget: %w", err)
	}
	u := &unstructured.Unstructured{Object: obj}
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply poddisruptionbudget: %w", err)
	}
	return nil
}
