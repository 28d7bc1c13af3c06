// Package kafkaauth builds the TLS and SASL parts of a sarama client configuration from the
// keys of the Secrets a KafkaPipeline references: the runtime reads them from mounted files,
// the operator from the Secrets themselves. Errors name keys, never their contents.
package kafkaauth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// TLS builds a client TLS configuration from the keys of a TLS Secret: ca.crt (the CAs that
// sign the brokers' certificates; the system's when absent), and tls.crt with tls.key for
// mutual TLS.
func TLS(data map[string][]byte, insecureSkipVerify bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecureSkipVerify} //nolint:gosec // the user's explicit choice, for tests
	if ca := data["ca.crt"]; len(ca) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, errors.New("key ca.crt holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	crt, key := data["tls.crt"], data["tls.key"]
	switch {
	case len(crt) > 0 && len(key) > 0:
		pair, err := tls.X509KeyPair(crt, key)
		if err != nil {
			return nil, errors.New("keys tls.crt and tls.key do not form a certificate and key pair")
		}
		cfg.Certificates = []tls.Certificate{pair}
	case len(crt) > 0 || len(key) > 0:
		return nil, errors.New("keys tls.crt and tls.key must be set together")
	}
	return cfg, nil
}

// SetSASL turns on SASL in sc with the mechanism and credentials.
func SetSASL(sc *sarama.Config, mechanism kpipev1.SASLMechanism, user, password string) error {
	sc.Net.SASL.Enable = true
	sc.Net.SASL.Handshake = true
	sc.Net.SASL.User = user
	sc.Net.SASL.Password = password
	switch mechanism {
	case kpipev1.SASLPlain:
		sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	case kpipev1.SASLSCRAMSHA256:
		sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
	case kpipev1.SASLSCRAMSHA512:
		sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
	default:
		return fmt.Errorf("unsupported SASL mechanism %q", mechanism)
	}
	return nil
}

// scramClient runs one SCRAM conversation for sarama with xdg-go/scram.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (c *scramClient) Begin(user, password, authzID string) error {
	client, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return fmt.Errorf("scram: %w", err)
	}
	c.conv = client.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }

func (c *scramClient) Done() bool { return c.conv.Done() }
