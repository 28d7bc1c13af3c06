package v1alpha1

// The contract between the operator, which renders a pipeline's pods, and `kpipe run`, which
// runs inside them. Both sides use these names; nothing else couples them.
const (
	// EnvPipelineSpec holds the KafkaPipelineSpec as JSON (defaults applied, template left out).
	// This is the runtime's whole configuration: the same schema as the custom resource.
	EnvPipelineSpec = "KPIPE_PIPELINE_SPEC"
	// EnvPipelineName and EnvPipelineNamespace name the KafkaPipeline, for logs and metrics.
	EnvPipelineName      = "KPIPE_PIPELINE_NAME"
	EnvPipelineNamespace = "KPIPE_PIPELINE_NAMESPACE"
	// EnvTLSDir is the directory holding ca.crt, tls.crt and tls.key from spec.kafka.tls.secretRef.
	EnvTLSDir = "KPIPE_TLS_DIR"
	// EnvSASLDir is the directory holding username and password from spec.kafka.sasl.secretRef.
	EnvSASLDir = "KPIPE_SASL_DIR"
	// EnvHTTPHeadersDir is the directory holding the request headers of
	// spec.processor.http.headersSecretRef, one file per header.
	EnvHTTPHeadersDir = "KPIPE_HTTP_HEADERS_DIR"
	// EnvPodContract is the pod contract version the pod must honour, computed by the operator
	// with RequiredContract. A runtime that implements an older contract refuses to start
	// (see PodContractVersion); one that implements this version or a newer one runs.
	EnvPodContract = "KPIPE_POD_CONTRACT"
	// EnvHTTPAddr is the address of the runtime's /metrics, /healthz and /readyz.
	EnvHTTPAddr = "KPIPE_HTTP_ADDR"

	// TLSMountPath and SASLMountPath are where the pods mount the referenced Secrets.
	TLSMountPath  = "/etc/kpipe/tls"
	SASLMountPath = "/etc/kpipe/sasl"
	// HTTPHeadersMountPath is where the pods mount spec.processor.http.headersSecretRef.
	HTTPHeadersMountPath = "/etc/kpipe/http-headers"
	// HTTPPort is the runtime's port for /metrics, /healthz and /readyz.
	HTTPPort = 9090

	// TerminationMessagePath is where the pipeline container writes why it refused to start;
	// the kubelet keeps it in the container's status, and the operator reads it back.
	TerminationMessagePath = "/dev/termination-log"
	// ContractRefusalPrefix starts the termination message of a runtime that refuses to start
	// because the pod requires a newer pod contract than it implements.
	ContractRefusalPrefix = "kpipe pod contract: "

	// PipelineLabel on a pod names the KafkaPipeline it runs; the Deployment selects on it.
	PipelineLabel = "kpipe.io/pipeline"
	// ConfigHashAnnotation on the pod template changes whenever the rendered configuration
	// or a referenced Secret changes, so the pods roll.
	ConfigHashAnnotation = "kpipe.io/config-hash"

	// SecretOptInLabel, with the value SecretOptInValue, marks a Secret that pipelines may
	// use. Under `kpipe manager --secret-opt-in` the operator reads, and lets pods mount, only
	// Secrets labelled so: creating a KafkaPipeline then does not imply access to every Secret
	// of its namespace.
	SecretOptInLabel = "kpipe.io/pipeline-access"
	SecretOptInValue = "true"
)
