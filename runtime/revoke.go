package runtime

import (
	"context"
	"slices"

	"github.com/IBM/sarama"
)

// assignmentNotice is cooperative-sticky with one addition: it tells the claims the member's
// new assignment and its generation as soon as SyncGroup returns them, before sarama fetches
// the committed offsets of the added partitions and starts their claims (the claims commit
// their start then: startoffset.go). sarama then closes the revoked claims'
// Messages channels and waits, up to the rebalance timeout, for their ConsumeClaim to
// return; but a revoked claim may not be reading its channel: its feeder may wait for room
// in the pool, and sarama's own feeder for the partition may wait in OnConsume for room in
// the inbound gate. Both only free up as other partitions' messages are processed, which
// can take longer than the rebalance timeout when the pool is saturated; sarama then ends
// the whole session. With the notice, a revoked claim's context ends and its inbound claim
// closes at once, so both waits end.
type assignmentNotice struct {
	inner  cooperativeStrategy
	notify func(assigned map[string][]int32, generation int32)
}

// cooperativeStrategy is what sarama asks of cooperative-sticky.
type cooperativeStrategy interface {
	sarama.RebalanceProtocolBalanceStrategy
	sarama.SubscriptionUserDataBalanceStrategy
	sarama.OnAssignmentBalanceStrategy
}

// withAssignmentNotice wraps s when it is a cooperative strategy sarama calls back; it
// returns s unchanged otherwise.
func withAssignmentNotice(s sarama.BalanceStrategy, notify func(map[string][]int32, int32)) sarama.BalanceStrategy {
	cs, ok := s.(cooperativeStrategy)
	if !ok {
		return s
	}
	return &assignmentNotice{inner: cs, notify: notify}
}

func (a *assignmentNotice) Name() string { return a.inner.Name() }

func (a *assignmentNotice) Plan(members map[string]sarama.ConsumerGroupMemberMetadata, topics map[string][]int32) (sarama.BalanceStrategyPlan, error) {
	return a.inner.Plan(members, topics)
}

func (a *assignmentNotice) AssignmentData(memberID string, topics map[string][]int32, generationID int32) ([]byte, error) {
	return a.inner.AssignmentData(memberID, topics, generationID)
}

func (a *assignmentNotice) SupportedProtocols() []sarama.RebalanceProtocol {
	return a.inner.SupportedProtocols()
}

func (a *assignmentNotice) SubscriptionUserData(topics []string) ([]byte, error) {
	return a.inner.SubscriptionUserData(topics)
}

func (a *assignmentNotice) OnAssignment(assignment *sarama.ConsumerGroupMemberAssignment, generationID int32) {
	a.inner.OnAssignment(assignment, generationID)
	if assignment != nil {
		a.notify(assignment.Topics, generationID)
	}
}

// claimRun is a running ConsumeClaim: its context and its share of the inbound gate.
type claimRun struct {
	cancel context.CancelFunc
	in     *inbound
	ic     *inboundClaim
}

// startClaim registers a claim and returns its context, which ends with the session or
// when the partition is no longer assigned (revoked).
func (h *claims) startClaim(sess sarama.ConsumerGroupSession, tp topicPartition, in *inbound, ic *inboundClaim) (context.Context, func()) {
	ctx, cancel := context.WithCancel(sess.Context())
	h.mu.Lock()
	if h.running == nil {
		h.running = map[topicPartition]*claimRun{}
	}
	h.running[tp] = &claimRun{cancel: cancel, in: in, ic: ic}
	h.mu.Unlock()
	return ctx, func() {
		h.mu.Lock()
		delete(h.running, tp)
		h.mu.Unlock()
		cancel()
	}
}

// newAssignment is told the member's assignment of generation when SyncGroup returns it, on
// the incremental protocol: it ends the revoked claims, then commits the start of the added
// partitions that have no committed offset.
func (h *claims) newAssignment(topics map[string][]int32, generation int32) {
	h.assigned(topics)
	h.commitAddedStarts(topics, generation)
}

// assigned ends the claims that the member's new assignment leaves out.
func (h *claims) assigned(topics map[string][]int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for tp, run := range h.running {
		if !slices.Contains(topics[tp.topic], tp.partition) {
			run.cancel()
			run.in.close(run.ic)
		}
	}
}
