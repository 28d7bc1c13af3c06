package runtime

import (
	"net/http"
	"os"
	goruntime "runtime"
	"strings"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/internal/kafkaclient"
)

// Config is everything a Pipeline needs: the KafkaPipeline spec (defaulted and validated)
// and the credentials read from the mounted Secrets.
type Config struct {
	// Spec is the pipeline's spec, with defaults applied.
	Spec *kpipev1.KafkaPipelineSpec
	// Name and Namespace name the KafkaPipeline in logs and metrics labels; both optional.
	Name, Namespace string
	// Credentials are the TLS configuration and SASL credentials built from the mounted
	// Secrets; each nil when spec.kafka does not use it.
	Credentials kafkaclient.Credentials
	// UnknownFields are the spec fields, by path, that this runtime does not know: a newer
	// operator rendered them. They are ignored, logged once and exported as
	// kpipe_spec_unknown_fields. Fields whose meaning must not be ignored raise the pod
	// contract instead (see CheckContract).
	UnknownFields []string
	// HTTPHeaders are the request headers of spec.processor.http.headersSecretRef, read from
	// the mounted Secret; nil without it.
	HTTPHeaders http.Header
}

// ConfigError lists every problem found in a pipeline's configuration, one per line.
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string {
	return "invalid pipeline configuration:\n  - " + strings.Join(e.Problems, "\n  - ")
}

// SecretDirs are the directories the referenced Secrets are mounted at.
type SecretDirs struct {
	// TLS holds ca.crt, tls.crt and tls.key (default kpipev1.TLSMountPath).
	TLS string
	// SASL holds username and password (default kpipev1.SASLMountPath).
	SASL string
	// HTTPHeaders holds one file per request header (default kpipev1.HTTPHeadersMountPath).
	HTTPHeaders string
}

// SecretDirsFromEnv reads the Secret directories from KPIPE_TLS_DIR and KPIPE_SASL_DIR,
// falling back to the mount paths the operator uses.
func SecretDirsFromEnv() SecretDirs {
	return SecretDirs{
		TLS:         envOr(kpipev1.EnvTLSDir, kpipev1.TLSMountPath),
		SASL:        envOr(kpipev1.EnvSASLDir, kpipev1.SASLMountPath),
		HTTPHeaders: envOr(kpipev1.EnvHTTPHeadersDir, kpipev1.HTTPHeadersMountPath),
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// LoadConfig decodes a KafkaPipelineSpec from JSON with the API's lenient decoder (fields it
// does not know go to UnknownFields; repeated fields, wrong types and bad durations are
// errors), applies the API's defaults, validates it with the API's rules and reads the Secret
// files the spec needs. It connects nowhere. All problems are reported together in a
// *ConfigError.
func LoadConfig(specJSON []byte, dirs SecretDirs) (*Config, error) {
	spec, unknown, err := kpipev1.DecodeSpec(specJSON)
	if err != nil {
		return nil, &ConfigError{Problems: []string{err.Error()}}
	}
	problems := checkSpec(spec)
	creds, p := kafkaclient.LoadMounted(&spec.Kafka, dirs.TLS, dirs.SASL)
	problems = append(problems, p...)
	headers, p := loadHTTPHeaders(spec.Processor.HTTP, dirs.HTTPHeaders)
	problems = append(problems, p...)
	cfg := &Config{Spec: spec, Credentials: creds, HTTPHeaders: headers, UnknownFields: unknown}
	if len(problems) > 0 {
		return nil, &ConfigError{Problems: problems}
	}
	return cfg, nil
}

// checkSpec applies the API's defaults to spec and validates it with the API's rules,
// except the one about spec.template.image: the operator leaves the pod template out of the
// spec it hands the runtime, and the runtime has no use for it.
func checkSpec(spec *kpipev1.KafkaPipelineSpec) []string {
	spec.Default()
	var problems []string
	for _, e := range spec.Validate() {
		if e.Field == "spec.template.image" {
			continue
		}
		problems = append(problems, e.Error())
	}
	return problems
}

// PoolSize is spec.pool.size, or the CPUs available to the process (GOMAXPROCS follows
// the container's CPU limit).
func (c *Config) PoolSize() int {
	if s := c.Spec.Pool.Size; s != nil {
		return int(*s)
	}
	return goruntime.GOMAXPROCS(0)
}
