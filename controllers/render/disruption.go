package render

import (
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// PodDisruptionBudget renders the pipeline's PodDisruptionBudget, or nil when
// spec.disruptionBudget is not set. It selects the pods the way the Deployment does.
func PodDisruptionBudget(kp *kpipev1.KafkaPipeline) *policyv1.PodDisruptionBudget {
	b := kp.Spec.DisruptionBudget
	if b == nil {
		return nil
	}
	maxUnavailable := b.MaxUnavailable
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: childMeta(kp),
		Spec: policyv1.PodDisruptionBudgetSpec{
			Selector:       &metav1.LabelSelector{MatchLabels: SelectorLabels(kp.Name)},
			MaxUnavailable: &maxUnavailable,
		},
	}
}

// childMeta names an object the pipeline owns: the pipeline's name and namespace, kpipe's
// labels, and the pipeline as its controller, so the garbage collector removes it with the
// pipeline.
func childMeta(kp *kpipev1.KafkaPipeline) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:      kp.Name,
		Namespace: kp.Namespace,
		Labels:    Labels(kp.Name),
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion:         kpipev1.GroupVersion.String(),
			Kind:               "KafkaPipeline",
			Name:               kp.Name,
			UID:                kp.UID,
			Controller:         new(true),
			BlockOwnerDeletion: new(true),
		}},
	}
}
