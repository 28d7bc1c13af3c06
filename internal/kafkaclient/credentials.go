package kafkaclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// Credentials are how a client proves itself to Kafka: TLS and SASL, each nil when the
// pipeline does not use it.
type Credentials struct {
	TLS  *tls.Config
	SASL *SASL
}

// SASL is a mechanism with its credentials.
type SASL struct {
	Mechanism kpipev1.SASLMechanism
	Username  string
	Password  string
}

// String hides the password, so credentials never reach a log by accident.
func (s SASL) String() string {
	return fmt.Sprintf("%s user %q", s.Mechanism, s.Username)
}

// GoString hides the password from %#v as well.
func (s SASL) GoString() string { return s.String() }

// TLSFromSecret builds a client TLS configuration from the keys of a TLS Secret (see
// KeyCACert, KeyTLSCert, KeyTLSKey); nil data means no Secret: the system's CAs and no client
// certificate.
func TLSFromSecret(data map[string][]byte, insecureSkipVerify bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecureSkipVerify} //nolint:gosec // the user's explicit choice, reported by the operator
	if ca := data[KeyCACert]; len(ca) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("key %s holds no PEM certificate", KeyCACert)
		}
		cfg.RootCAs = pool
	}
	crt, key := data[KeyTLSCert], data[KeyTLSKey]
	switch {
	case len(crt) > 0 && len(key) > 0:
		pair, err := tls.X509KeyPair(crt, key)
		if err != nil {
			return nil, fmt.Errorf("keys %s and %s do not form a certificate and key pair", KeyTLSCert, KeyTLSKey)
		}
		cfg.Certificates = []tls.Certificate{pair}
	case len(crt) > 0 || len(key) > 0:
		return nil, fmt.Errorf("keys %s and %s must be set together", KeyTLSCert, KeyTLSKey)
	}
	return cfg, nil
}

// SASLFromSecret reads the username and password keys of a SASL Secret. Trailing newlines,
// which files written by hand tend to have, are not part of either.
func SASLFromSecret(mechanism kpipev1.SASLMechanism, data map[string][]byte) (*SASL, error) {
	s := &SASL{
		Mechanism: mechanism,
		Username:  strings.TrimRight(string(data[KeyUsername]), "\r\n"),
		Password:  strings.TrimRight(string(data[KeyPassword]), "\r\n"),
	}
	var problems []error
	for _, f := range []struct{ key, value string }{{KeyUsername, s.Username}, {KeyPassword, s.Password}} {
		if _, ok := data[f.key]; !ok {
			problems = append(problems, &MissingKeyError{Key: f.key})
		} else if f.value == "" {
			problems = append(problems, &EmptyKeyError{Key: f.key})
		}
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return s, nil
}

// MissingKeyError says that a Secret lacks a key it must have.
type MissingKeyError struct{ Key string }

func (e *MissingKeyError) Error() string { return "missing key " + e.Key }

// EmptyKeyError says that a key a Secret must have is empty.
type EmptyKeyError struct{ Key string }

func (e *EmptyKeyError) Error() string { return "key " + e.Key + " is empty" }
