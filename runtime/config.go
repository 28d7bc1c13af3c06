package runtime

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/runtime/kafkaauth"
)

// Config is everything a Pipeline needs: the KafkaPipeline spec (defaulted and validated)
// and the credentials read from the mounted Secrets.
type Config struct {
	// Spec is the pipeline's spec, with defaults applied.
	Spec *kpipev1.KafkaPipelineSpec
	// Name and Namespace name the KafkaPipeline in logs and metrics labels; both optional.
	Name, Namespace string
	// TLS is the client TLS configuration, nil without spec.kafka.tls.
	TLS *tls.Config
	// SASL holds the credentials, nil without spec.kafka.sasl.
	SASL *SASLCredentials
}

// SASLCredentials are the SASL mechanism and the credentials from the mounted Secret.
type SASLCredentials struct {
	Mechanism kpipev1.SASLMechanism
	Username  string
	Password  string
}

// String hides the password, so credentials never reach a log by accident.
func (c SASLCredentials) String() string {
	return fmt.Sprintf("%s user %q", c.Mechanism, c.Username)
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
}

// SecretDirsFromEnv reads the Secret directories from KPIPE_TLS_DIR and KPIPE_SASL_DIR,
// falling back to the mount paths the operator uses.
func SecretDirsFromEnv() SecretDirs {
	return SecretDirs{
		TLS:  envOr(kpipev1.EnvTLSDir, kpipev1.TLSMountPath),
		SASL: envOr(kpipev1.EnvSASLDir, kpipev1.SASLMountPath),
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// LoadConfig decodes a KafkaPipelineSpec from JSON with the API's strict decoder, applies
// the API's defaults, validates it with the API's rules and reads the Secret files the spec
// needs. It connects nowhere. All problems are reported together in a *ConfigError.
func LoadConfig(specJSON []byte, dirs SecretDirs) (*Config, error) {
	spec, err := kpipev1.ParseSpec(specJSON)
	if err != nil {
		return nil, &ConfigError{Problems: []string{err.Error()}}
	}
	problems := checkSpec(spec)
	cfg := &Config{Spec: spec}
	if spec.Kafka.TLS != nil {
		var p []string
		cfg.TLS, p = loadTLS(spec.Kafka.TLS, dirs.TLS)
		problems = append(problems, p...)
	}
	if spec.Kafka.SASL != nil {
		var p []string
		cfg.SASL, p = loadSASL(spec.Kafka.SASL, dirs.SASL)
		problems = append(problems, p...)
	}
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

// readSecretFile reads name in dir; a missing file is (nil, false, nil).
func readSecretFile(dir, name string) ([]byte, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return b, true, nil
}

func loadTLS(spec *kpipev1.TLSSpec, dir string) (*tls.Config, []string) {
	if spec.SecretRef == nil {
		tc, _ := kafkaauth.TLS(nil, spec.InsecureSkipVerify) // the system's root CAs, no client certificate: cannot fail
		return tc, nil
	}
	const where = "spec.kafka.tls.secretRef"
	files := map[string][]byte{}
	var problems []string
	for _, name := range []string{"ca.crt", "tls.crt", "tls.key"} {
		b, ok, err := readSecretFile(dir, name)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: read %s: %v", where, filepath.Join(dir, name), err))
		} else if ok {
			files[name] = b
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	if len(files) == 0 {
		return nil, []string{fmt.Sprintf("%s: Secret %q is not mounted at %s: none of ca.crt, tls.crt, tls.key is there",
			where, spec.SecretRef.Name, dir)}
	}
	_, hasCrt := files["tls.crt"]
	_, hasKey := files["tls.key"]
	switch {
	case hasCrt && !hasKey:
		return nil, []string{fmt.Sprintf("%s: %s is missing: a client certificate needs tls.crt and tls.key", where, filepath.Join(dir, "tls.key"))}
	case hasKey && !hasCrt:
		return nil, []string{fmt.Sprintf("%s: %s is missing: a client certificate needs tls.crt and tls.key", where, filepath.Join(dir, "tls.crt"))}
	}
	tc, err := kafkaauth.TLS(files, spec.InsecureSkipVerify)
	if err != nil {
		return nil, []string{fmt.Sprintf("%s: %v (files in %s)", where, err, dir)}
	}
	return tc, nil
}

func loadSASL(spec *kpipev1.SASLSpec, dir string) (*SASLCredentials, []string) {
	const where = "spec.kafka.sasl.secretRef"
	creds := &SASLCredentials{Mechanism: spec.Mechanism}
	var problems []string
	for _, f := range []struct {
		name string
		dst  *string
	}{{"username", &creds.Username}, {"password", &creds.Password}} {
		path := filepath.Join(dir, f.name)
		b, ok, err := readSecretFile(dir, f.name)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: read %s: %v", where, path, err))
		case !ok:
			problems = append(problems, fmt.Sprintf("%s: %s is missing: Secret %q must have the key %s", where, path, spec.SecretRef.Name, f.name))
		default:
			*f.dst = strings.TrimRight(string(b), "\r\n")
			if *f.dst == "" {
				problems = append(problems, fmt.Sprintf("%s: %s is empty", where, path))
			}
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return creds, nil
}
