package v1alpha1

// KafkaConnection is how to reach a Kafka cluster.
//
// +kubebuilder:validation:XValidation:rule="!has(self.sasl) || self.sasl.mechanism != 'PLAIN' || has(self.tls)",message="SASL PLAIN sends the password in clear text: it needs kafka.tls",fieldPath=".sasl.mechanism"
type KafkaConnection struct {
	// bootstrapServers are host:port addresses of one or more brokers of the cluster; the port
	// is 1 to 65535.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=261
	// +kubebuilder:validation:items:Pattern=`^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?):[0-9]{1,5}$`
	// +kubebuilder:validation:items:XValidation:rule="!self.matches(':[0-9]{1,5}$') || (int(self.substring(self.lastIndexOf(':') + 1)) >= 1 && int(self.substring(self.lastIndexOf(':') + 1)) <= 65535)",message="the port must be from 1 to 65535"
	BootstrapServers []string `json:"bootstrapServers"`

	// version is the Kafka protocol version the clients speak, such as "3.6.0": one the Kafka
	// client kpipe uses supports, from 0.11.0.0 (record headers, which the dead-letter topic and
	// forwarding need) on. Versions before 1.0 have four parts ("0.11.0.2").
	// Default: the kpipe runtime's default, which suits Kafka 2.8 and later.
	// +optional
	// +kubebuilder:validation:Enum="0.11.0.0";"0.11.0.1";"0.11.0.2";"1.0.0";"1.0.1";"1.0.2";"1.1.0";"1.1.1";"2.0.0";"2.0.1";"2.1.0";"2.1.1";"2.2.0";"2.2.1";"2.2.2";"2.3.0";"2.3.1";"2.4.0";"2.4.1";"2.5.0";"2.5.1";"2.6.0";"2.6.1";"2.6.2";"2.6.3";"2.7.0";"2.7.1";"2.7.2";"2.8.0";"2.8.1";"2.8.2";"3.0.0";"3.0.1";"3.0.2";"3.1.0";"3.1.1";"3.1.2";"3.2.0";"3.2.1";"3.2.2";"3.2.3";"3.3.0";"3.3.1";"3.3.2";"3.4.0";"3.4.1";"3.5.0";"3.5.1";"3.5.2";"3.6.0";"3.6.1";"3.6.2";"3.7.0";"3.7.1";"3.7.2";"3.8.0";"3.8.1";"3.9.0";"3.9.1";"3.9.2";"4.0.0";"4.0.1";"4.1.0";"4.1.1";"4.1.2";"4.2.0";"4.2.1";"4.3.0";"4.3.1"
	Version string `json:"version,omitempty"`

	// tls turns on TLS to the brokers. Without a secretRef the system's root CAs are used.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`

	// sasl turns on SASL authentication.
	// +optional
	SASL *SASLSpec `json:"sasl,omitempty"`

	// isolationLevel is how the consumed topics are read. ReadUncommitted reads every record,
	// those of open and aborted transactions too. ReadCommitted skips the records of aborted
	// transactions and reads those of a transaction once it committed; processor.forward's
	// ExactlyOnce needs it. Lag is computed against the last stable offset either way.
	// +optional
	// +kubebuilder:default=ReadUncommitted
	IsolationLevel IsolationLevel `json:"isolationLevel,omitempty"`

	// rebalanceStrategy is how the replicas share the partitions of the consumer group.
	// CooperativeSticky (the default) moves only the partitions that change owner when a
	// replica joins or leaves; the others keep being consumed. Range and RoundRobin are
	// eager: every change stops every partition of every replica until the group is
	// rebalanced. Range assigns each topic separately, so no more replicas than the largest
	// topic has partitions get work; RoundRobin and CooperativeSticky spread the partitions
	// of all topics together. A group running an eager strategy (kpipe before this field)
	// moves to CooperativeSticky on its own during the rollout; see docs/runtime.md.
	// +optional
	// +kubebuilder:default=CooperativeSticky
	// +kubebuilder:validation:Enum=CooperativeSticky;Range;RoundRobin
	RebalanceStrategy RebalanceStrategy `json:"rebalanceStrategy,omitempty"`
}

// IsolationLevel is how a consumer reads transactional records.
// +kubebuilder:validation:Enum=ReadUncommitted;ReadCommitted
type IsolationLevel string

const (
	// ReadUncommitted reads every record, committed or not.
	ReadUncommitted IsolationLevel = "ReadUncommitted"
	// ReadCommitted reads only the records of committed transactions (and those written
	// without one).
	ReadCommitted IsolationLevel = "ReadCommitted"
)

// RebalanceStrategy is how the replicas share the partitions of the consumer group.
type RebalanceStrategy string

const (
	// RebalanceCooperativeSticky moves only the partitions that change owner (Kafka's
	// cooperative-sticky assignor and incremental rebalance protocol).
	RebalanceCooperativeSticky RebalanceStrategy = "CooperativeSticky"
	// RebalanceRange assigns each topic's partitions in ranges, topic by topic (eager).
	RebalanceRange RebalanceStrategy = "Range"
	// RebalanceRoundRobin deals the partitions of all topics in turn (eager).
	RebalanceRoundRobin RebalanceStrategy = "RoundRobin"
)

// RebalanceStrategies are the values of spec.kafka.rebalanceStrategy.
var RebalanceStrategies = []string{string(RebalanceCooperativeSticky), string(RebalanceRange), string(RebalanceRoundRobin)}

// PerTopic reports whether the strategy assigns each topic's partitions separately, so that
// the replicas that get work are at most the partitions of the largest topic, rather than
// the partitions of all topics together.
func (r RebalanceStrategy) PerTopic() bool { return r == RebalanceRange }

// Eager reports whether every rebalance stops every partition of the session (Range,
// RoundRobin); empty is the default, CooperativeSticky.
func (r RebalanceStrategy) Eager() bool { return r == RebalanceRange || r == RebalanceRoundRobin }

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
