package v1alpha1

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
