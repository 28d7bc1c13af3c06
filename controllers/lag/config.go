package lag

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// DefaultKafkaVersion is the protocol version spoken when a pipeline does not set one; it suits
// Kafka 2.8 and later, like the runtime's default.
var DefaultKafkaVersion = sarama.V2_8_0_0

// Connection is how to reach one Kafka cluster. Pipelines with equal connection keys share one
// client.
type Connection struct {
	// BootstrapServers are host:port addresses.
	BootstrapServers []string
	// Version is the Kafka protocol version ("" for DefaultKafkaVersion).
	Version string
	// TLS is the TLS configuration, or nil for plaintext.
	TLS *tls.Config
	// SASL is the SASL configuration, or nil.
	SASL *SASL
	// AuthHash identifies the credentials (a hash of the Secrets' data, never the data), so
	// that rotated credentials get a new client.
	AuthHash string
}

// SASL holds SASL credentials.
type SASL struct {
	Mechanism string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	User      string
	Password  string
}

// Key identifies the connection without revealing credentials.
func (c Connection) Key() string {
	servers := slices.Clone(c.BootstrapServers)
	slices.Sort(servers)
	var b strings.Builder
	fmt.Fprintf(&b, "%s|v=%s", strings.Join(servers, ","), c.Version)
	if c.TLS != nil {
		fmt.Fprintf(&b, "|tls(insecure=%v)", c.TLS.InsecureSkipVerify)
	}
	if c.SASL != nil {
		fmt.Fprintf(&b, "|sasl=%s", c.SASL.Mechanism)
	}
	if c.AuthHash != "" {
		fmt.Fprintf(&b, "|auth=%s", c.AuthHash)
	}
	return b.String()
}

// TLSConfig builds a client TLS configuration from the keys of a TLS Secret: ca.crt, and
// tls.crt with tls.key for mutual TLS. Errors name keys, never contents.
func TLSConfig(data map[string][]byte, insecureSkipVerify bool) (*tls.Config, error) {
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

// SASLConfig builds SASL credentials from the keys username and password of a Secret.
func SASLConfig(mechanism string, data map[string][]byte) (*SASL, error) {
	var missing []string
	for _, k := range []string{"username", "password"} {
		if len(data[k]) == 0 {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing key(s) %s", strings.Join(missing, ", "))
	}
	return &SASL{Mechanism: mechanism, User: string(data["username"]), Password: string(data["password"])}, nil
}

// saramaConfig is the client configuration of the lag reader: short timeouts, few retries,
// no background metadata refresh, no topic auto-creation.
func saramaConfig(c Connection, timeout time.Duration) (*sarama.Config, error) {
	cfg := sarama.NewConfig()
	cfg.ClientID = "kpipe-operator"
	cfg.Version = DefaultKafkaVersion
	if c.Version != "" {
		v, err := sarama.ParseKafkaVersion(c.Version)
		if err != nil {
			return nil, fmt.Errorf("kafka version %q: %w", c.Version, err)
		}
		cfg.Version = v
	}
	cfg.Net.DialTimeout = timeout
	cfg.Net.ReadTimeout = timeout
	cfg.Net.WriteTimeout = timeout
	cfg.Metadata.Full = false
	cfg.Metadata.RefreshFrequency = 0
	cfg.Metadata.AllowAutoTopicCreation = false
	cfg.Metadata.Retry.Max = 0
	cfg.Metadata.Timeout = timeout
	cfg.Admin.Timeout = timeout
	cfg.Admin.Retry.Max = 1
	cfg.Admin.Retry.Backoff = 100 * time.Millisecond
	cfg.Producer.Return.Successes = true
	if c.TLS != nil {
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = c.TLS
	}
	if s := c.SASL; s != nil {
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.Handshake = true
		cfg.Net.SASL.User = s.User
		cfg.Net.SASL.Password = s.Password
		switch s.Mechanism {
		case "PLAIN":
			cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case "SCRAM-SHA-256":
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
		case "SCRAM-SHA-512":
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
		default:
			return nil, fmt.Errorf("unsupported SASL mechanism %q", s.Mechanism)
		}
	}
	return cfg, nil
}

// scramClient adapts xdg-go/scram to sarama.SCRAMClient.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (s *scramClient) Begin(user, password, authzID string) error {
	c, err := s.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	s.conv = c.NewConversation()
	return nil
}

func (s *scramClient) Step(challenge string) (string, error) { return s.conv.Step(challenge) }

func (s *scramClient) Done() bool { return s.conv.Done() }
