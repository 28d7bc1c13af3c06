package runtime

import (
	"fmt"

	"github.com/IBM/sarama"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/runtime/kafkaauth"
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
	if c := cfg.SASL; c != nil {
		if err := kafkaauth.SetSASL(sc, c.Mechanism, c.Username, c.Password); err != nil {
			return nil, fmt.Errorf("spec.kafka.sasl.mechanism: %w", err)
		}
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("kafka client configuration: %w", err)
	}
	return sc, nil
}
