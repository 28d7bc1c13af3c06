package runtime

import (
	"fmt"
	"math"
	"time"

	"github.com/IBM/sarama"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/internal/kafkaclient"
)

// saramaConfig turns the pipeline's configuration into the sarama configuration shared by
// its consumer group and its producer.
func saramaConfig(cfg *Config, memory *memoryBudget) (*sarama.Config, error) {
	spec := cfg.Spec
	clientID := "kpipe"
	if cfg.Name != "" {
		clientID = "kpipe-" + cfg.Name
	}
	sc, err := kafkaclient.NewConfig(clientID, spec.Kafka.Version, cfg.Credentials)
	if err != nil {
		return nil, err
	}

	sc.Consumer.Return.Errors = true
	sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	if spec.InitialOffset == kpipev1.InitialOffsetEarliest {
		sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	}
	if spec.Kafka.IsolationLevel == kpipev1.ReadCommitted {
		// Records of aborted transactions are skipped, those of open ones wait for the commit.
		// It also makes the consumer group's offset fetch wait for the offsets of transactions
		// still open (KIP-447), which ExactlyOnce relies on.
		sc.Consumer.IsolationLevel = sarama.ReadCommitted
	}
	// Offsets are committed by the runtime: on a ticker, and when a partition is released.
	sc.Consumer.Offsets.AutoCommit.Enable = false
	// The memory budget: a fetch response is at most the fetch share (a single record batch
	// larger than that still comes whole, so a large message makes progress); each session
	// splits it between its partitions (claims.sizeFetches). A partition's feeder waits for
	// the pool rather than detaching after MaxProcessingTime: detaching lets the broker
	// fetch again while the detached feeder holds the previous response.
	sc.Consumer.Fetch.MaxBytes = int32(min(memory.fetch, math.MaxInt32))
	sc.Consumer.Fetch.Default = memory.partitionFetch(1)
	sc.Consumer.MaxProcessingTime = time.Hour

	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Partitioner = sarama.NewHashPartitioner
	if spec.Pool.Ordering != kpipev1.OrderingUnordered {
		// One request in flight per broker keeps the producer's retries from reordering
		// the messages of one key.
		sc.Net.MaxOpenRequests = 1
	}

	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("kafka client configuration: %w", err)
	}
	return sc, nil
}
