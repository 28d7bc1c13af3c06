package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PoolSpec sizes the worker pool of each replica.
type PoolSpec struct {
	// size is the number of workers per replica. Default: the number of CPUs available to
	// the pod (its CPU limit, rounded up, or the node's CPUs without a limit). A forward
	// pipeline in AtLeastOnce leaves its workers idle: its consumer hands each message to
	// the producer itself, in each partition's order.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4096
	Size *int32 `json:"size,omitempty"`

	// buffer is the capacity of the bounded buffer between the consumer and the workers, in
	// messages. What it holds is also bounded in bytes by memoryBudget. Default 256.
	// +optional
	// +kubebuilder:default=256
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

	// memoryBudget bounds in bytes what one replica holds: messages fetched, waiting in the
	// buffer, being processed and retried, and written but not yet acknowledged; a larger
	// message is processed alone. Between 1Mi and 64Gi. Default: half of the container's
	// memory limit, which the runtime reads from its cgroup (256Mi with the default 512Mi
	// limit). When set, the container's memory limit is rendered at twice the budget if it
	// would be lower, unless template.resources.limits.memory is set, which must then be at
	// least the budget.
	// +optional
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('1Mi')) >= 0 && quantity(string(self)).compareTo(quantity('64Gi')) <= 0",message="memoryBudget must be between 1Mi and 64Gi"
	MemoryBudget *resource.Quantity `json:"memoryBudget,omitempty"`
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
	// stop. Default 1m; at most 24h.
	// +optional
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('24h')",message="must be a positive duration of at most 24h"
	Window *metav1.Duration `json:"window,omitempty"`

	// penalty is how long the consumer stays stopped after an idle window before it starts
	// again. At least window; a multiple of it is recommended. Default 5m; at most 168h (7 days).
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('168h')",message="must be a positive duration of at most 168h"
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

	// delivery is what a message consumed once becomes on the topic. AtLeastOnce: a crash or
	// a rebalance may write it again. ExactlyOnce: the forwarded messages, the dead letters
	// and the consumed offsets of each commit interval are written in one Kafka transaction,
	// so readers with isolation level read_committed see each message once; it needs
	// kafka.isolationLevel ReadCommitted, an eager kafka.rebalanceStrategy (Range or RoundRobin)
	// and Kafka 0.11 or later (2.5 or later for the
	// fencing of stale group members).
	// +optional
	// +kubebuilder:default=AtLeastOnce
	Delivery Delivery `json:"delivery,omitempty"`
}

// Delivery is the delivery guarantee of the forward processor.
// +kubebuilder:validation:Enum=AtLeastOnce;ExactlyOnce
type Delivery string

const (
	// DeliveryAtLeastOnce writes every message at least once; duplicates after a crash or a
	// rebalance.
	DeliveryAtLeastOnce Delivery = "AtLeastOnce"
	// DeliveryExactlyOnce writes the output and the consumed offsets in one transaction.
	DeliveryExactlyOnce Delivery = "ExactlyOnce"
)

// HTTPProcessor POSTs each message to a service. A 2xx answer means done; 408, 429 and 5xx are
// retried; any other 4xx sends the message to the dead-letter topic at once.
type HTTPProcessor struct {
	// url is the http:// or https:// address each message is POSTed to. It carries no
	// credentials (user:password@host): a URL is not a secret, it shows in the spec, in events
	// and in logs. Credentials go in headersSecretRef.
	// +required
	// +kubebuilder:validation:MinLength=8
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[^:/?#]+://[^/?#]*@')",message="must not contain credentials (user:password@)"
	// +kubebuilder:validation:XValidation:rule="!isURL(self) || url(self).getPort() == '' || (int(url(self).getPort()) >= 1 && int(url(self).getPort()) <= 65535)",message="the port must be from 1 to 65535"
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'http' || url(self).getScheme() == 'https') && url(self).getHostname() != ''",message="must be an absolute http:// or https:// URL"
	URL string `json:"url"`

	// timeout bounds one request, including reading the answer. Default 5s; at most 1h.
	// +optional
	// +kubebuilder:default="5s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('1h')",message="must be a positive duration of at most 1h"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// headersSecretRef names a Secret in the pipeline's namespace whose keys are sent as
	// request headers with every POST: a key Authorization with the value "Bearer <token>"
	// authenticates to the service. Header names starting with Kpipe- and Content-Type are
	// kpipe's own and are refused. It is mounted into the pods, never copied, and its values
	// never appear in an error.
	// +optional
	HeadersSecretRef *SecretReference `json:"headersSecretRef,omitempty"`
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
	// maxBackoff. Default 100ms; at most 1h.
	// +optional
	// +kubebuilder:default="100ms"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('1h')",message="must be a positive duration of at most 1h"
	InitialBackoff *metav1.Duration `json:"initialBackoff,omitempty"`

	// maxBackoff caps the wait between attempts. Default 10s; at most 1h.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('1h')",message="must be a positive duration of at most 1h"
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
