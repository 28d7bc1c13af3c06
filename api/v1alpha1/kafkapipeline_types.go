package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KafkaPipelineSpec describes one Kafka consumer pipeline: where it reads, what it does with
// each message, and how many replicas run it.
//
// +kubebuilder:validation:XValidation:rule="!has(self.processor.handler) || (has(self.template) && has(self.template.image))",message="processor.handler needs template.image: an image built around the kpipe runtime that registers the handler"
// +kubebuilder:validation:XValidation:rule="!has(self.deadLetter) || !(self.deadLetter.topic in self.topics)",message="deadLetter.topic must not be one of the consumed topics"
// +kubebuilder:validation:XValidation:rule="!has(self.processor.forward) || !(self.processor.forward.topic in self.topics)",message="processor.forward.topic must not be one of the consumed topics"
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
	// Committed offsets belong to this group.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self.trim().size() > 0",message="group must not be blank"
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
	// sets through the scale subresource. Ignored in Auto mode. Default 1.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`

	// template overrides parts of the pods that run the pipeline: image, resources,
	// environment, scheduling and metadata.
	// +optional
	Template *PodTemplateOverrides `json:"template,omitempty"`

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

// KafkaConnection is how to reach a Kafka cluster.
type KafkaConnection struct {
	// bootstrapServers are host:port addresses of one or more brokers of the cluster.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=261
	// +kubebuilder:validation:items:Pattern=`^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?):[0-9]{1,5}$`
	BootstrapServers []string `json:"bootstrapServers"`

	// version is the Kafka protocol version the clients speak, such as "3.6.0".
	// Default: the kpipe runtime's default, which suits Kafka 2.8 and later.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+\.[0-9]+\.[0-9]+$`
	Version string `json:"version,omitempty"`

	// tls turns on TLS to the brokers. Without a secretRef the system's root CAs are used.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`

	// sasl turns on SASL authentication.
	// +optional
	SASL *SASLSpec `json:"sasl,omitempty"`
}

// TLSSpec configures TLS to the brokers.
type TLSSpec struct {
	// secretRef names a Secret in the pipeline's namespace holding any of the keys
	// ca.crt (CA bundle that signs the brokers' certificates), tls.crt and tls.key
	// (a client certificate, for mutual TLS). It is mounted into the pods, never copied.
	// +optional
	SecretRef *SecretReference `json:"secretRef,omitempty"`

	// insecureSkipVerify turns off verification of the brokers' certificates. For tests only.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// SASLSpec configures SASL authentication.
type SASLSpec struct {
	// mechanism is the SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	// +required
	// +kubebuilder:validation:Enum=PLAIN;SCRAM-SHA-256;SCRAM-SHA-512
	Mechanism SASLMechanism `json:"mechanism"`

	// secretRef names a Secret in the pipeline's namespace with the keys username and
	// password. It is mounted into the pods, never copied.
	// +required
	SecretRef SecretReference `json:"secretRef"`
}

// SASLMechanism is a SASL mechanism name.
type SASLMechanism string

const (
	// SASLPlain is SASL/PLAIN.
	SASLPlain SASLMechanism = "PLAIN"
	// SASLSCRAMSHA256 is SASL/SCRAM-SHA-256.
	SASLSCRAMSHA256 SASLMechanism = "SCRAM-SHA-256"
	// SASLSCRAMSHA512 is SASL/SCRAM-SHA-512.
	SASLSCRAMSHA512 SASLMechanism = "SCRAM-SHA-512"
)

// SecretReference names a Secret in the same namespace as the KafkaPipeline.
// It has no namespace field: a pipeline cannot reference another namespace's Secrets.
type SecretReference struct {
	// name is the name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// PoolSpec sizes the worker pool of each replica.
type PoolSpec struct {
	// size is the number of workers per replica. Default: the number of CPUs available to
	// the pod (its CPU limit, rounded up, or the node's CPUs without a limit).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4096
	Size *int32 `json:"size,omitempty"`

	// buffer is the capacity of the bounded buffer between the consumer and the workers, in
	// messages. Memory per replica is bounded by buffer + size messages, not by lag. Default 16.
	// +optional
	// +kubebuilder:default=16
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	Buffer *int32 `json:"buffer,omitempty"`

	// ordering is the ordering guarantee:
	// Partition processes one message of a partition at a time, in offset order;
	// Key processes messages with the same key in order and different keys in parallel;
	// Unordered processes any message on any free worker. Default Key.
	// +optional
	// +kubebuilder:default=Key
	Ordering Ordering `json:"ordering,omitempty"`
}

// Ordering is the ordering guarantee of the worker pool.
// +kubebuilder:validation:Enum=Partition;Key;Unordered
type Ordering string

const (
	// OrderingPartition keeps offset order within a partition: one message in flight per partition.
	OrderingPartition Ordering = "Partition"
	// OrderingKey keeps order per key: different keys of one partition run in parallel.
	OrderingKey Ordering = "Key"
	// OrderingUnordered makes no ordering promise.
	OrderingUnordered Ordering = "Unordered"
)

// IdleSpec stops a replica's consumer when it has been idle and rests it.
//
// +kubebuilder:validation:XValidation:rule="!has(self.window) || !has(self.penalty) || duration(self.penalty) >= duration(self.window)",message="idle.penalty must be at least idle.window"
type IdleSpec struct {
	// window is how long nothing may be consumed before the consumer and the worker pool
	// stop. Default 1m.
	// +optional
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be a positive duration"
	Window *metav1.Duration `json:"window,omitempty"`

	// penalty is how long the consumer stays stopped after an idle window before it starts
	// again. At least window; a multiple of it is recommended. Default 5m.
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be a positive duration"
	Penalty *metav1.Duration `json:"penalty,omitempty"`
}

// ProcessorSpec is what happens to each message. Exactly one field is set.
//
// +kubebuilder:validation:XValidation:rule="(has(self.forward) ? 1 : 0) + (has(self.http) ? 1 : 0) + (has(self.handler) ? 1 : 0) == 1",message="exactly one of processor.forward, processor.http or processor.handler must be set"
type ProcessorSpec struct {
	// forward produces each message, with its key and headers, to another topic.
	// +optional
	Forward *ForwardProcessor `json:"forward,omitempty"`

	// http POSTs each message to an HTTP service.
	// +optional
	HTTP *HTTPProcessor `json:"http,omitempty"`

	// handler runs a Go handler compiled into a custom image (see template.image) and
	// registered there under this name.
	// +optional
	Handler *HandlerProcessor `json:"handler,omitempty"`
}

// ForwardProcessor produces each message to a topic.
type ForwardProcessor struct {
	// topic is the topic messages are produced to, partitioned by key.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=249
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]+$`
	// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..'",message="a topic name cannot be '.' or '..'"
	Topic string `json:"topic"`
}

// HTTPProcessor POSTs each message to a service. A 2xx answer means done; 408, 429 and 5xx are
// retried; any other 4xx sends the message to the dead-letter topic at once.
type HTTPProcessor struct {
	// url is the http:// or https:// address each message is POSTed to.
	// +required
	// +kubebuilder:validation:MinLength=8
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'http' || url(self).getScheme() == 'https') && url(self).getHostname() != ''",message="must be an absolute http:// or https:// URL"
	URL string `json:"url"`

	// timeout bounds one request, including reading the answer. Default 5s.
	// +optional
	// +kubebuilder:default="5s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be a positive duration"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// HandlerProcessor names a Go handler registered in a custom image.
type HandlerProcessor struct {
	// name is the name the custom image registered its handler under.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$`
	Name string `json:"name"`
}

// RetrySpec is the retry policy for a failed message: exponential backoff with jitter.
//
// +kubebuilder:validation:XValidation:rule="!has(self.initialBackoff) || !has(self.maxBackoff) || duration(self.maxBackoff) >= duration(self.initialBackoff)",message="retry.maxBackoff must be at least retry.initialBackoff"
type RetrySpec struct {
	// maxAttempts is the number of attempts in all, the first included. Default 5.
	// +optional
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxAttempts *int32 `json:"maxAttempts,omitempty"`

	// initialBackoff is the wait before the second attempt; each later wait doubles, up to
	// maxBackoff. Default 100ms.
	// +optional
	// +kubebuilder:default="100ms"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be a positive duration"
	InitialBackoff *metav1.Duration `json:"initialBackoff,omitempty"`

	// maxBackoff caps the wait between attempts. Default 10s.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be a positive duration"
	MaxBackoff *metav1.Duration `json:"maxBackoff,omitempty"`
}

// DeadLetterSpec is where failed messages go.
type DeadLetterSpec struct {
	// topic receives each message whose last attempt failed: its original key and value, and
	// headers naming the error, the source topic, partition and offset, and the attempt count.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=249
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]+$`
	// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..'",message="a topic name cannot be '.' or '..'"
	Topic string `json:"topic"`
}

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

	// pollInterval is how often the operator reads partition counts and lag. Default 10s.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="must be at least 1s"
	PollInterval *metav1.Duration `json:"pollInterval,omitempty"`

	// scaleDownStabilization is how long a lower replica count must be wanted before the
	// operator scales down to it (the highest count wanted within the window wins). Default 5m.
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	ScaleDownStabilization *metav1.Duration `json:"scaleDownStabilization,omitempty"`
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
}

// Condition types of a KafkaPipeline.
const (
	// ConditionReady is True when the Deployment is applied, Kafka is reachable, the topics
	// exist and the replicas the operator wants are ready.
	ConditionReady = "Ready"
	// ConditionIdle is True while the pipeline has no lag and no commit progress.
	ConditionIdle = "Idle"
	// ConditionStalled is True while some partition has lag but its committed offset has not
	// moved for several polls.
	ConditionStalled = "Stalled"
)

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
