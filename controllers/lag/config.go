package lag

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/kpipe-io/kpipe/internal/kafkaclient"
)

// Connection is how to reach one Kafka cluster. Pipelines with equal connection keys share one
// client.
type Connection struct {
	// BootstrapServers are host:port addresses.
	BootstrapServers []string
	// Version is the Kafka protocol version ("" for kafkaclient.DefaultVersion).
	Version string
	// Credentials are the TLS configuration and SASL credentials, each nil when unused.
	Credentials kafkaclient.Credentials
	// AuthHash identifies the credentials (a hash of the Secrets' data, never the data), so
	// that rotated credentials get a new client.
	AuthHash string
}

// Key identifies the connection without revealing credentials.
func (c Connection) Key() string {
	servers := slices.Clone(c.BootstrapServers)
	slices.Sort(servers)
	var b strings.Builder
	fmt.Fprintf(&b, "%s|v=%s", strings.Join(servers, ","), c.Version)
	if t := c.Credentials.TLS; t != nil {
		fmt.Fprintf(&b, "|tls(insecure=%v)", t.InsecureSkipVerify)
	}
	if s := c.Credentials.SASL; s != nil {
		fmt.Fprintf(&b, "|sasl=%s", s.Mechanism)
	}
	if c.AuthHash != "" {
		fmt.Fprintf(&b, "|auth=%s", c.AuthHash)
	}
	return b.String()
}

// saramaConfig is the client configuration of the lag reader: short timeouts, few retries,
// no background metadata refresh, no topic auto-creation.
func saramaConfig(c Connection, timeout time.Duration) (*sarama.Config, error) {
	cfg, err := kafkaclient.NewConfig("kpipe-operator", c.Version, c.Credentials)
	if err != nil {
		return nil, err
	}
	if c.Version == "" && !cfg.Version.IsAtLeast(sarama.V3_0_0_0) {
		// Each request's version is negotiated down to what the broker supports (ApiVersions),
		// so a newer client maximum costs older brokers nothing; OffsetFetch for several groups
		// at once (version 8) needs Kafka 3.0 as the client's version.
		cfg.Version = sarama.V3_0_0_0
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
	return cfg, nil
}
