package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// Member is a consumer group member, a sarama client as a kpipe pod is: it joins the group,
// holds its session and claims, consumes nothing, and commits only what it is told, with the
// metadata it is given (a pod's telemetry record). Tests use it for a group with members
// whose commits they control.
type Member struct {
	cancel context.CancelFunc
	group  sarama.ConsumerGroup
	done   chan struct{}

	mu      sync.Mutex
	session sarama.ConsumerGroupSession
	joined  chan struct{} // closed at the first session
}

// JoinGroup starts a member of group on the topics under the client id and waits (up to 30s)
// until it has a session.
func JoinGroup(addrs []string, group, clientID string, topics ...string) (*Member, error) {
	conf := sarama.NewConfig()
	conf.Version = sarama.V3_0_0_0
	conf.ClientID = clientID
	conf.Consumer.Offsets.AutoCommit.Enable = false
	conf.Consumer.Offsets.Initial = sarama.OffsetOldest
	cg, err := sarama.NewConsumerGroup(addrs, group, conf)
	if err != nil {
		return nil, fmt.Errorf("consumer group %q: %w", group, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Member{cancel: cancel, group: cg, done: make(chan struct{}), joined: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, topics, m); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	select {
	case <-m.joined:
		return m, nil
	case <-time.After(30 * time.Second):
		_ = m.Close()
		return nil, fmt.Errorf("member of %q did not join in 30s", group)
	}
}

// Commit commits the offsets with the metadata, in the member's current session; an offset
// equal to the committed one is committed again with the new metadata, as a pod refreshing
// its record does.
func (m *Member) Commit(offsets map[string]map[int32]int64, metadata string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.session == nil {
		return errors.New("no session: the group is rebalancing")
	}
	for t, ps := range offsets {
		for p, off := range ps {
			m.session.MarkOffset(t, p, off, metadata)  // forward only
			m.session.ResetOffset(t, p, off, metadata) // the same offset, new metadata
		}
	}
	m.session.Commit()
	return nil
}

// Close leaves the group.
func (m *Member) Close() error {
	m.cancel()
	err := m.group.Close()
	<-m.done
	return err
}

// Setup implements sarama.ConsumerGroupHandler.
func (m *Member) Setup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.session = s
	select {
	case <-m.joined:
	default:
		close(m.joined)
	}
	return nil
}

// Cleanup implements sarama.ConsumerGroupHandler.
func (m *Member) Cleanup(sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.session = nil
	return nil
}

// ConsumeClaim implements sarama.ConsumerGroupHandler: it holds the claim, consuming nothing.
func (m *Member) ConsumeClaim(s sarama.ConsumerGroupSession, _ sarama.ConsumerGroupClaim) error {
	<-s.Context().Done()
	return nil
}
