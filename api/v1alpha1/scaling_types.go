package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// ScalingSpec chooses how the replica count is set.
//
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || !has(self.maxReplicas) || self.maxReplicas >= self.minReplicas",message="scaling.maxReplicas must be at least scaling.minReplicas"
type ScalingSpec struct {
	// mode is Auto (replicas follow consumer lag within minReplicas..maxReplicas and never
	// exceed the partition count) or Manual (replicas come from spec.replicas, which
	// `kubectl scale` and external autoscalers set). Default Auto.
	// +optional
	// +kubebuilder:default=Auto
	Mode ScalingMode `json:"mode,omitempty"`

	// minReplicas is the fewest replicas in Auto mode. 0 lets an idle pipeline scale to zero.
	// Default 0.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	MinReplicas *int32 `json:"minReplicas,omitempty"`

	// maxReplicas is the most replicas in Auto mode. The partition count caps it further: a
	// replica beyond it would own no partition. Default 10.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`

	// lagPerReplica is the lag (messages not yet committed) one replica is expected to work
	// off; the target is ceil(lag / lagPerReplica). Default 1000.
	// +optional
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=1
	LagPerReplica *int64 `json:"lagPerReplica,omitempty"`

	// activationLag is the lag above which a pipeline at zero replicas wakes up. Default 0:
	// any lag wakes it.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	ActivationLag *int64 `json:"activationLag,omitempty"`

	// pollInterval is how often the operator reads partition counts and lag. Default 10s;
	// 1s to 1h.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="must be at least 1s and at most 1h"
	PollInterval *metav1.Duration `json:"pollInterval,omitempty"`

	// scaleDownStabilization is how long a lower replica count must be wanted before the
	// operator scales down to it (the highest count wanted within the window wins). 0 scales
	// down at once. Default 5m; at most 24h.
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('24h')",message="must be at most 24h"
	ScaleDownStabilization *metav1.Duration `json:"scaleDownStabilization,omitempty"`

	// lagTimeTarget is a time target for the lag: the operator also asks for the replicas
	// that keep up with the produce rate and work the lag off within this time, that is
	// (lag / lagTimeTarget + produce rate) over what one replica processes, bounded and
	// rounded like the lagPerReplica rule; the higher of the two wins. It needs a known
	// per-replica rate (measured by the pods, or from commit growth), and does nothing until
	// one is known. Unset: no time target. 1s to 24h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="must be at least 1s and at most 24h"
	LagTimeTarget *metav1.Duration `json:"lagTimeTarget,omitempty"`
}

// ScalingMode is how the replica count is set.
// +kubebuilder:validation:Enum=Auto;Manual
type ScalingMode string

const (
	// ScalingAuto sets replicas from consumer lag.
	ScalingAuto ScalingMode = "Auto"
	// ScalingManual takes replicas from spec.replicas.
	ScalingManual ScalingMode = "Manual"
)
