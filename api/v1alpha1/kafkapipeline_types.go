package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// KafkaPipeline runs a Kafka consumer pipeline as a Deployment and scales it on consumer lag.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=kp,categories=kpipe
// +kubebuilder:printcolumn:name="Group",type=string,JSONPath=`.spec.group`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.replicas`
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.desiredReplicas`
// +kubebuilder:printcolumn:name="Partitions",type=integer,JSONPath=`.status.partitions`
// +kubebuilder:printcolumn:name="Lag",type=integer,JSONPath=`.status.lag`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="metadata.name must be at most 63 characters: it names the Deployment and is the value of the pods' kpipe.io/pipeline label"
type KafkaPipeline struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the pipeline the user wants.
	// +required
	Spec KafkaPipelineSpec `json:"spec"`

	// status is what the operator last observed.
	// +optional
	Status KafkaPipelineStatus `json:"status,omitempty"`
}

// KafkaPipelineList is a list of KafkaPipelines.
//
// +kubebuilder:object:root=true
type KafkaPipelineList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the KafkaPipelines.
	Items []KafkaPipeline `json:"items"`
}

func init() {
	SchemeBuilder.Register(&KafkaPipeline{}, &KafkaPipelineList{})
}

// KafkaPipelineSpec describes one Kafka consumer pipeline: where it reads, what it does with
// each message, and how many replicas run it.
//
// +kubebuilder:validation:XValidation:rule="!has(self.processor.handler) || (has(self.template) && has(self.template.image))",message="processor.handler needs template.image: an image built around the kpipe runtime that registers the handler"
// +kubebuilder:validation:XValidation:rule="!has(self.deadLetter) || !(self.deadLetter.topic in self.topics)",message="deadLetter.topic must not be one of the consumed topics"
// +kubebuilder:validation:XValidation:rule="!has(self.processor.forward) || !(self.processor.forward.topic in self.topics)",message="processor.forward.topic must not be one of the consumed topics"
// +kubebuilder:validation:XValidation:rule="!has(self.pool) || !has(self.pool.memoryBudget) || !has(self.template) || !has(self.template.resources) || !has(self.template.resources.limits) || !('memory' in self.template.resources.limits) || quantity(string(self.pool.memoryBudget)).compareTo(quantity(string(self.template.resources.limits['memory']))) <= 0",message="pool.memoryBudget must not be above template.resources.limits.memory; keep it at most half of the limit",fieldPath=".pool.memoryBudget"
// +kubebuilder:validation:XValidation:rule="!has(self.replicas) || (has(self.scaling.mode) && self.scaling.mode == 'Manual')",message="replicas (what kubectl scale sets) is used in scaling.mode Manual only; in Auto the operator sets the replica count from lag: remove spec.replicas or set scaling.mode to Manual",fieldPath=".replicas"
// +kubebuilder:validation:XValidation:rule="!has(self.deadLetter) || !has(self.processor.forward) || self.deadLetter.topic != self.processor.forward.topic",message="deadLetter.topic must not be processor.forward.topic",fieldPath=".deadLetter.topic"
// +kubebuilder:validation:XValidation:rule="!has(self.processor.forward) || !has(self.processor.forward.delivery) || self.processor.forward.delivery != 'ExactlyOnce' || (has(self.kafka.isolationLevel) && self.kafka.isolationLevel == 'ReadCommitted')",message="processor.forward.delivery ExactlyOnce needs kafka.isolationLevel ReadCommitted",fieldPath=".kafka.isolationLevel"
// +kubebuilder:validation:XValidation:rule="!has(self.processor.forward) || !has(self.processor.forward.delivery) || self.processor.forward.delivery != 'ExactlyOnce' || (has(self.kafka.rebalanceStrategy) && self.kafka.rebalanceStrategy != 'CooperativeSticky')",message="processor.forward.delivery ExactlyOnce needs an eager kafka.rebalanceStrategy, Range or RoundRobin",fieldPath=".kafka.rebalanceStrategy"
type KafkaPipelineSpec struct {
	// kafka is how the pipeline connects to the Kafka cluster.
	// +required
	Kafka KafkaConnection `json:"kafka"`

	// topics are the Kafka topics the pipeline consumes (1 to 64 names, no repeats).
	// A name is 1 to 249 characters of ASCII letters, digits, '.', '_' and '-', and not "." or "..".
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=249
	// +kubebuilder:validation:items:Pattern=`^[a-zA-Z0-9._-]+$`
	// +kubebuilder:validation:items:XValidation:rule="self != '.' && self != '..'",message="a topic name cannot be '.' or '..'"
	Topics []string `json:"topics"`

	// group is the Kafka consumer group id shared by every replica of the pipeline.
	// Committed offsets belong to this group. At most 255 bytes in UTF-8 (Kafka counts bytes).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self.trim().size() > 0",message="group must not be blank"
	// +kubebuilder:validation:XValidation:rule="size(bytes(self)) <= 255",message="group must be at most 255 bytes in UTF-8"
	Group string `json:"group"`

	// initialOffset is where a partition starts when the group has no committed offset for it:
	// Latest (only new messages) or Earliest (the whole retained log). Default Latest.
	// +optional
	// +kubebuilder:default=Latest
	InitialOffset InitialOffset `json:"initialOffset,omitempty"`

	// pool sizes the worker pool of each replica and chooses the ordering guarantee.
	// +optional
	// +kubebuilder:default={}
	Pool PoolSpec `json:"pool,omitempty"`

	// idle stops a replica's consumer after a quiet window and rests it for a penalty.
	// +optional
	// +kubebuilder:default={}
	Idle IdleSpec `json:"idle,omitempty"`

	// processor is what happens to each message: exactly one of forward, http or handler.
	// +required
	Processor ProcessorSpec `json:"processor"`

	// retry is how often and how patiently a failed message is tried again before it goes to
	// the dead-letter topic.
	// +optional
	// +kubebuilder:default={}
	Retry RetrySpec `json:"retry,omitempty"`

	// deadLetter is where a message goes after its last failed attempt. Without it, a message
	// that keeps failing is retried at retry.maxBackoff until it succeeds, and its partition
	// does not advance (nothing is dropped); the pipeline then reports Stalled.
	// +optional
	DeadLetter *DeadLetterSpec `json:"deadLetter,omitempty"`

	// scaling chooses how the replica count is set: from consumer lag (Auto) or from
	// spec.replicas (Manual).
	// +optional
	// +kubebuilder:default={}
	Scaling ScalingSpec `json:"scaling,omitempty"`

	// replicas is the number of pods when scaling.mode is Manual; it is what `kubectl scale`
	// sets through the scale subresource. Refused in Auto mode, where the operator sets the count
	// from lag. Default 1; at most 1000.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Replicas *int32 `json:"replicas,omitempty"`

	// template overrides parts of the pods that run the pipeline: image, resources,
	// environment, scheduling and metadata.
	// +optional
	Template *PodTemplateOverrides `json:"template,omitempty"`

	// disruptionBudget gives the pipeline's pods a PodDisruptionBudget when set, so that a
	// node drain takes down at most maxUnavailable of them at once. Removing it removes the
	// budget.
	// +optional
	DisruptionBudget *DisruptionBudgetSpec `json:"disruptionBudget,omitempty"`

	// suspend scales the pipeline to zero and stops polling Kafka while true.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// InitialOffset is where a partition without a committed offset starts.
// +kubebuilder:validation:Enum=Latest;Earliest
type InitialOffset string

const (
	// InitialOffsetLatest starts at the end of the log: only messages produced from now on.
	InitialOffsetLatest InitialOffset = "Latest"
	// InitialOffsetEarliest starts at the oldest retained message.
	InitialOffsetEarliest InitialOffset = "Earliest"
)
