package runtime

import (
	"errors"
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
	sc.Consumer.Fetch.Default = memory.partitionFetch(1, 1)
	sc.Consumer.MaxProcessingTime = time.Hour
	groupTimeouts(sc)

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

// The consumer group's timeouts, which must fit together:
//
//   - session (10s): a member that sends no heartbeat for this long is removed.
//   - heartbeat (1s): a member learns of a rebalance at its next heartbeat, and a round
//     completes when the last member has learned of it and joined. A short interval keeps
//     rounds short: the moved partitions wait for two of them on the incremental protocol
//     (revoke, then assign), and the member's group requests wait behind its JoinGroup
//     (newConsumerGroup keeps its fetches off that connection).
//   - rebalance (30s, more with a longer drain or shutdown timeout): how long the
//     coordinator waits for every member to rejoin, and how long a revoked partition may take
//     to drain (sarama ends the session after that). The drain timeout (10s) and the
//     shutdown timeout (25s) stay at least timeoutMargin below it, so a member that drains or
//     shuts down still owns its partitions when it commits.
//   - JoinGroup and SyncGroup reads (65s): the coordinator answers a JoinGroup when the round
//     completes. sarama reads every answer with Net.ReadTimeout; a member that gives up on
//     its JoinGroup sends another, which can only make the round longer. Kafka completes a
//     round within the rebalance timeout of its start, and its Java client reads JoinGroup
//     for that plus 5s. kpipe reads for twice the rebalance timeout plus timeoutMargin: a
//     coordinator that extends a round when a member joins late (kfake does, see
//     test/storm) still answers within that once the members stop coming and going. The
//     cost: a broker that hangs without closing the connection is noticed after 65s, not 30s.
//   - rejoin backoff (250ms, 32 tries): a member whose SyncGroup is answered
//     REBALANCE_IN_PROGRESS (another member joined after the round completed, as replicas
//     that start one after another do) must join the new round, which waits for it; sarama
//     waits Rebalance.Retry.Backoff (2s by default) first, Kafka's Java client 100ms. The
//     same backoff spaces the retries when the coordinator moved: 32 tries keep sarama's 8s
//     for that.
const (
	sessionTimeout   = 10 * time.Second
	heartbeatEvery   = time.Second
	rebalanceTimeout = 30 * time.Second
	timeoutMargin    = 5 * time.Second
	rejoinBackoff    = 250 * time.Millisecond
	rejoinTries      = 32
)

func groupTimeouts(sc *sarama.Config) {
	sc.Consumer.Group.Session.Timeout = sessionTimeout
	sc.Consumer.Group.Heartbeat.Interval = heartbeatEvery
	sc.Consumer.Group.Rebalance.Timeout = rebalanceTimeout
	sc.Consumer.Group.Rebalance.Retry.Backoff = rejoinBackoff
	sc.Consumer.Group.Rebalance.Retry.Max = rejoinTries
}

// fitTimeouts raises the rebalance timeout above the drain and shutdown timeouts by
// timeoutMargin, and the read timeout to twice the rebalance timeout plus timeoutMargin.
// It runs after the options' sarama hook, so a hook cannot take the group out of fit.
func fitTimeouts(sc *sarama.Config, o *options) {
	g := &sc.Consumer.Group
	g.Rebalance.Timeout = max(g.Rebalance.Timeout, o.drainTimeout+timeoutMargin, o.shutdownTimeout+timeoutMargin)
	sc.Net.ReadTimeout = max(sc.Net.ReadTimeout, 2*g.Rebalance.Timeout+timeoutMargin)
}

// newConsumerGroup creates a consumer group whose coordinator requests (JoinGroup,
// SyncGroup, heartbeats, offset fetches and commits, LeaveGroup) travel on connections of
// their own, and returns it with its client, which the caller closes after the group.
//
// A Kafka broker handles one request of a connection at a time, in order, and it holds a
// JoinGroup until the round completes: up to the rebalance timeout, in practice until the
// last member has learned of the round at its next heartbeat. sarama keeps one connection
// per broker in a client and sends the group's requests on the coordinator broker's, which
// also carries the fetches from the partitions that broker leads. On the incremental
// protocol the member keeps consuming while it rejoins, but those partitions stopped for
// the whole round, twice per cooperative change (revoke, then assign); an offset commit
// waited behind a fetch's long poll as well. Kafka's Java client keeps a separate
// connection to the coordinator for this reason. Here a second client holds the
// coordinator's connection; the first fetches and keeps the topics' metadata.
func newConsumerGroup(brokers []string, group string, sc *sarama.Config) (sarama.ConsumerGroup, sarama.Client, error) {
	fetch, err := sarama.NewClient(brokers, sc)
	if err != nil {
		return nil, nil, err
	}
	coordConfig := *sc
	coordConfig.Metadata.Full = false // it looks up the coordinator, and the offsets of added partitions (startoffset.go)
	coord, err := sarama.NewClient(brokers, &coordConfig)
	if err != nil {
		_ = fetch.Close()
		return nil, nil, err
	}
	client := &coordinatorSplit{Client: fetch, coord: coord}
	g, err := sarama.NewConsumerGroupFromClient(group, client)
	if err != nil {
		_ = client.Close()
		return nil, nil, err
	}
	return g, client, nil
}

// coordinatorSplit is the fetching client, with the group coordinator taken from the
// coordinator's own client.
type coordinatorSplit struct {
	sarama.Client
	coord sarama.Client
}

func (c *coordinatorSplit) Coordinator(group string) (*sarama.Broker, error) {
	return c.coord.Coordinator(group)
}

func (c *coordinatorSplit) RefreshCoordinator(group string) error {
	return c.coord.RefreshCoordinator(group)
}

// coordinatorClient is the client holding the group coordinator's connections: the
// coordinator's own when c is split, else c.
func coordinatorClient(c sarama.Client) sarama.Client {
	if s, ok := c.(*coordinatorSplit); ok {
		return s.coord
	}
	return c
}

func (c *coordinatorSplit) Close() error {
	return errors.Join(c.Client.Close(), c.coord.Close())
}
