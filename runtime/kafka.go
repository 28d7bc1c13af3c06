package runtime

import (
	"fmt"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// saramaConfig turns the pipeline's configuration into the sarama configuration shared by
// its consumer group and its producer.
func saramaConfig(cfg *Config) (*sarama.Config, error) {
	spec := cfg.Spec
	sc := sarama.NewConfig()
	sc.ClientID = "kpipe"
	if cfg.Name != "" {
		sc.ClientID = "kpipe-" + cfg.Name
	}
	if spec.Kafka.Version != "" {
		v, err := sarama.ParseKafkaVersion(spec.Kafka.Version)
		if err != nil {
			return nil, fmt.Errorf("spec.kafka.version: %w", err)
		}
		sc.Version = v
	}

	sc.Consumer.Return.Errors = true
	sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	if spec.InitialOffset == kpipev1.InitialOffsetEarliest {
		sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	}
	// Offsets are committed by the runtime: on a ticker, and when a partition is released.
	sc.Consumer.Offsets.AutoCommit.Enable = false

	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Partitioner = sarama.NewHashPartitioner
	if spec.Pool.Ordering != kpipev1.OrderingUnordered {
		// One request in flight per broker keeps the producer's retries from reordering
		// the messages of one key.
		sc.Net.MaxOpenRequests = 1
	}

	if cfg.TLS != nil {
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = cfg.TLS
	}
	if cfg.SASL != nil {
		if err := setSASL(sc, cfg.SASL); err != nil {
			return nil, err
		}
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("kafka client configuration: %w", err)
	}
	return sc, nil
}

func setSASL(sc *sarama.Config, c *SASLCredentials) error {
	sc.Net.SASL.Enable = true
	sc.Net.SASL.Handshake = true
	sc.Net.SASL.User = c.Username
	sc.Net.SASL.Password = c.Password
	switch c.Mechanism {
	case kpipev1.SASLPlain:
		sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	case kpipev1.SASLSCRAMSHA256:
		sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
	case kpipev1.SASLSCRAMSHA512:
		sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
	default:
		return fmt.Errorf("spec.kafka.sasl.mechanism: unsupported mechanism %q", c.Mechanism)
	}
	return nil
}

// scramClient runs one SCRAM conversation for sarama.
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

func (c *scramClient) Step(challenge string) (string, error) {
	return c.conv.Step(challenge)
}

func (c *scramClient) Done() bool {
	return c.conv.Done()
}
