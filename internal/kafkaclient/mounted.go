package kafkaclient

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// LoadMounted builds the credentials of spec.kafka from the Secrets mounted at tlsDir and
// saslDir, as the pods have them. Every problem is returned, one line each, naming the spec
// field and the file.
func LoadMounted(k *kpipev1.KafkaConnection, tlsDir, saslDir string) (Credentials, []string) {
	var creds Credentials
	var problems []string
	if k.TLS != nil {
		var p []string
		creds.TLS, p = loadMountedTLS(k.TLS, tlsDir)
		problems = append(problems, p...)
	}
	if k.SASL != nil {
		var p []string
		creds.SASL, p = loadMountedSASL(k.SASL, saslDir)
		problems = append(problems, p...)
	}
	return creds, problems
}

// readMounted reads the keys present in a mounted Secret's directory. A key that is not there
// is left out; any other read error is a problem.
func readMounted(where, dir string, keys []string) (map[string][]byte, []string) {
	data := map[string][]byte{}
	var problems []string
	for _, key := range keys {
		b, err := os.ReadFile(filepath.Join(dir, key))
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: read %s: %v", where, filepath.Join(dir, key), err))
		default:
			data[key] = b
		}
	}
	return data, problems
}

func loadMountedTLS(spec *kpipev1.TLSSpec, dir string) (*tls.Config, []string) {
	if spec.SecretRef == nil {
		tc, _ := TLSFromSecret(nil, spec.InsecureSkipVerify) // the system's roots, no client certificate: cannot fail
		return tc, nil
	}
	const where = "spec.kafka.tls.secretRef"
	data, problems := readMounted(where, dir, TLSKeys)
	if len(problems) > 0 {
		return nil, problems
	}
	if len(data) == 0 {
		return nil, []string{fmt.Sprintf("%s: Secret %q is not mounted at %s: none of %s is there",
			where, spec.SecretRef.Name, dir, strings.Join(TLSKeys, ", "))}
	}
	_, hasCrt := data[KeyTLSCert]
	_, hasKey := data[KeyTLSKey]
	if hasCrt != hasKey {
		missing := KeyTLSKey
		if hasKey {
			missing = KeyTLSCert
		}
		return nil, []string{fmt.Sprintf("%s: %s is missing: a client certificate needs %s and %s",
			where, filepath.Join(dir, missing), KeyTLSCert, KeyTLSKey)}
	}
	tc, err := TLSFromSecret(data, spec.InsecureSkipVerify)
	if err != nil {
		return nil, []string{fmt.Sprintf("%s: %v (files in %s)", where, err, dir)}
	}
	return tc, nil
}

func loadMountedSASL(spec *kpipev1.SASLSpec, dir string) (*SASL, []string) {
	const where = "spec.kafka.sasl.secretRef"
	data, problems := readMounted(where, dir, SASLKeys)
	if len(problems) > 0 {
		return nil, problems
	}
	s, err := SASLFromSecret(spec.Mechanism, data)
	if err == nil {
		return s, nil
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		return nil, []string{fmt.Sprintf("%s: %v (files in %s)", where, err, dir)}
	}
	for _, e := range joined.Unwrap() {
		var missing *MissingKeyError
		var empty *EmptyKeyError
		switch {
		case errors.As(e, &missing):
			problems = append(problems, fmt.Sprintf("%s: %s is missing: Secret %q must have the key %s",
				where, filepath.Join(dir, missing.Key), spec.SecretRef.Name, missing.Key))
		case errors.As(e, &empty):
			problems = append(problems, fmt.Sprintf("%s: %s is empty", where, filepath.Join(dir, empty.Key)))
		}
	}
	return nil, problems
}
