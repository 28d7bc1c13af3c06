package v1alpha1

import corev1 "k8s.io/api/core/v1"

// PodTemplateOverrides are the parts of the pipeline's pods a user may set.
type PodTemplateOverrides struct {
	// metadata adds labels and annotations to the pods.
	// +optional
	Metadata *PodMetadata `json:"metadata,omitempty"`

	// image replaces the operator's own image, for example with a custom image that
	// registers a Go handler. It must run the kpipe runtime with the `run` argument.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Image string `json:"image,omitempty"`

	// imagePullPolicy is the pull policy of the pipeline container.
	// +optional
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// imagePullSecrets are Secrets in the pipeline's namespace used to pull the image.
	// +optional
	// +listType=atomic
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// resources are the compute resources of the pipeline container. Default: requests of
	// 100m CPU and 128Mi memory, and a 512Mi memory limit.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// env adds environment variables to the pipeline container. Names starting with KPIPE_
	// are reserved for the operator.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:XValidation:rule="self.all(e, !e.name.startsWith('KPIPE_'))",message="environment variables starting with KPIPE_ are reserved for kpipe"
	Env []corev1.EnvVar `json:"env,omitempty"`

	// serviceAccountName is the service account the pods run as.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// nodeSelector constrains the pods to nodes with these labels.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations let the pods run on tainted nodes.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// affinity holds the pods' scheduling constraints.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// topologySpreadConstraints spread the pods across topology domains.
	// +optional
	// +listType=atomic
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`

	// priorityClassName is the pods' priority class.
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// terminationGracePeriodSeconds is how long a pod may drain in-flight work on shutdown
	// before it is killed. Default 30.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`
}

// PodMetadata is the labels and annotations added to the pods.
type PodMetadata struct {
	// labels are added to the pods. They cannot replace the labels kpipe selects pods by.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// annotations are added to the pods.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}
