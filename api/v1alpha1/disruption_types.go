package v1alpha1

import "k8s.io/apimachinery/pkg/util/intstr"

// DisruptionBudgetSpec asks for a PodDisruptionBudget over the pipeline's pods. Only
// maxUnavailable is offered: a minAvailable budget would block every node drain while a
// pipeline runs a single replica, and a pipeline's partitions move to the other replicas anyway.
type DisruptionBudgetSpec struct {
	// maxUnavailable is how many of the pipeline's pods a voluntary disruption (a node drain)
	// may take down at once: a number of at least 1, or a percentage from 1% to 100%.
	// +required
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 1 : self.matches('^([1-9][0-9]?|100)%$')",message="maxUnavailable must be a number of at least 1 or a percentage from 1% to 100%"
	MaxUnavailable intstr.IntOrString `json:"maxUnavailable"`
}
