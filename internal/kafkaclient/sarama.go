package kafkaclient

import (
	"fmt"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// DefaultVersion is the protocol version spoken when spec.kafka.version is not set; it suits
// Kafka 2.8 and later.
var DefaultVersion = sarama.V2_8_0_0

// NewConfig is the base sarama configuration of every kpipe client: its id, the protocol
// version ("" for DefaultVersion) and the credentials. Callers add the settings of their own
// purpose and validate the result.
func NewConfig(clientID, version string, creds Credentials) (*sarama.Config, error) {
	sc := sarama.NewConfig()
	sc.ClientID = clientID
	sc.Version = DefaultVersion
	if version != "" {
		v, err := sarama.ParseKafkaVersion(version)
		if err != nil {
			return nil, fmt.Errorf("spec.kafka.version %q: %w", version, err)
		}
		sc.Version = v
	}
	if creds.TLS != nil {
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = creds.TLS
	}
	if s := creds.SASL; s != nil {
		if err := setSASL(sc, s); err != nil {
			return nil, fmt.Errorf("spec.kafka.sasl.mechanism: %w", err)
		}
	}
	return sc, nil
}

func setSASL(sc *sarama.Config, s *SASL) error {
	sc.Net.SASL.Enable = true
	sc.Net.SASL.Handshake = true
	sc.Net.SASL.User = s.Username
	sc.Net.SASL.Password = s.Password
	switch s.Mechanism {
	case kpipev1.SASLPlain:
		sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	case kpipev1.SASLSCRAMSHA256:
		sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
	case kpipev1.SASLSCRAMSHA512:
		sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
	default:
		return fmt.Errorf("unsupported SASL mechanism %q", s.Mechanism)
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
