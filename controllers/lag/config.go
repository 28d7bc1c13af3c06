package lag

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/runtime/kafkaauth"
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
		if err := kafkaauth.SetSASL(cfg, kpipev1.SASLMechanism(s.Mechanism), s.User, s.Password); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}
