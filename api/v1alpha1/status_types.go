package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// KafkaPipelineStatus is what the operator last observed of the pipeline.
type KafkaPipelineStatus struct {
	// observedGeneration is the metadata.generation the status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// replicas is the number of pods of the pipeline's Deployment.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// readyReplicas is the number of those pods that are ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// desiredReplicas is the replica count the operator decided on at the last poll.
	// +optional
	DesiredReplicas int32 `json:"desiredReplicas,omitempty"`

	// partitions is the number of partitions across all consumed topics.
	// +optional
	Partitions int32 `json:"partitions,omitempty"`

	// lag is the total number of messages not yet committed by the group, across all topics.
	// +optional
	Lag int64 `json:"lag,omitempty"`

	// lagSeconds is how long, in whole seconds, the oldest message not yet committed by the
	// group has waited: the largest lagSeconds of the topics. 0 when there is no lag. It is
	// an estimate: see docs/scaling.md, "Lag in seconds".
	// +optional
	// +kubebuilder:validation:Minimum=0
	LagSeconds int64 `json:"lagSeconds,omitempty"`

	// topics holds the partition count and lag of each consumed topic.
	// +optional
	// +listType=map
	// +listMapKey=name
	Topics []TopicStatus `json:"topics,omitempty"`

	// lastScaleTime is when the operator last changed the replica count.
	// +optional
	LastScaleTime *metav1.Time `json:"lastScaleTime,omitempty"`

	// idleSince is when the pipeline was last seen with no lag and no commit progress; unset
	// while it is busy.
	// +optional
	IdleSince *metav1.Time `json:"idleSince,omitempty"`

	// selector is the label selector of the pipeline's pods, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`

	// conditions are Ready, Idle and Stalled, with reasons.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// TopicStatus is the observed state of one consumed topic.
type TopicStatus struct {
	// name is the topic.
	// +required
	Name string `json:"name"`

	// partitions is the topic's partition count.
	// +optional
	Partitions int32 `json:"partitions,omitempty"`

	// lag is the number of messages of the topic not yet committed by the group.
	// +optional
	Lag int64 `json:"lag,omitempty"`

	// lagSeconds is how long, in whole seconds, the topic's oldest message not yet committed
	// by the group has waited; 0 when the topic has no lag.
	// +optional
	// +kubebuilder:validation:Minimum=0
	LagSeconds int64 `json:"lagSeconds,omitempty"`
}

// Condition types of a KafkaPipeline.
const (
	// ConditionReady is True when the Deployment is applied, Kafka is reachable, the topics
	// exist and the replicas the operator wants are ready.
	ConditionReady = "Ready"
	// ConditionIdle is True while the pipeline has no lag and no commit progress.
	ConditionIdle = "Idle"
	// ConditionStalled is True while some partition is stuck: it has lag, its committed
	// offset has not moved for several polls, and more replicas would not move it (the pod
	// reports it retrying, blocked on the dead-letter topic, or not busy; or no pod reports).
	ConditionStalled = "Stalled"
)
