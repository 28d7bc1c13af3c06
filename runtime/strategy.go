package runtime

import (
	"context"
	"errors"
	"time"

	"github.com/IBM/sarama"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// The rebalance strategies a phase advertises in its JoinGroup, most preferred first. Kafka
// picks for the group the first strategy of its members' lists that every member supports,
// and sarama runs the incremental (cooperative) protocol only when every strategy listed
// supports it, so the list decides both.
//
//   - CooperativeSticky: cooperative-sticky alone, the incremental protocol.
//   - Range, RoundRobin: that strategy, then cooperative-sticky, on the eager protocol. The
//     second entry lets such a replica join a group whose members run CooperativeSticky,
//     during a rollout back from it: the group keeps cooperative-sticky until every member
//     lists the eager strategy first.
//   - bridging (a CooperativeSticky replica that found its group on an eager strategy, the
//     replicas of a kpipe from before spec.kafka.rebalanceStrategy): cooperative-sticky,
//     then range and roundrobin, on the eager protocol. The group keeps the eager strategy
//     while one of the old replicas is in it, and picks cooperative-sticky once they are all
//     gone; watchBridge then has the replica join again on the incremental protocol.
//
// Each phase builds new strategies: cooperative-sticky keeps the member's generation.
func (ph *phase) strategies() []sarama.BalanceStrategy {
	cooperative := sarama.NewBalanceStrategyCooperativeSticky()
	switch {
	case ph.bridging:
		return []sarama.BalanceStrategy{cooperative, sarama.NewBalanceStrategyRange(), sarama.NewBalanceStrategyRoundRobin()}
	case ph.p.set.strategy == kpipev1.RebalanceRange:
		return []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange(), cooperative}
	case ph.p.set.strategy == kpipev1.RebalanceRoundRobin:
		return []sarama.BalanceStrategy{sarama.NewBalanceStrategyRoundRobin(), cooperative}
	default:
		return []sarama.BalanceStrategy{withAssignmentNotice(cooperative, ph.claims.newAssignment)}
	}
}

// needsBridge reports whether a JoinGroup error means the group runs a strategy this
// replica did not list: a CooperativeSticky replica joining a group of eager replicas.
// The next phase then bridges.
func (ph *phase) needsBridge(err error) bool {
	return !ph.bridging && ph.p.set.strategy == kpipev1.RebalanceCooperativeSticky &&
		errors.Is(err, sarama.ErrInconsistentGroupProtocol)
}

// bridgeCheckEvery is how often a bridging replica asks the coordinator which strategy
// the group runs.
var bridgeCheckEvery = 10 * time.Second

// watchBridge, while the phase bridges, ends it once the group runs cooperative-sticky:
// every member lists it, so the next phase can join on the incremental protocol.
func (ph *phase) watchBridge(ctx context.Context, stop context.CancelFunc) {
	if !ph.bridging {
		return
	}
	t := time.NewTicker(bridgeCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		proto, err := ph.groupProtocol()
		if err != nil {
			ph.p.log.Warn("describe consumer group", "err", err)
			continue
		}
		if proto == sarama.CooperativeStickyBalanceStrategyName {
			ph.p.log.Info("every member of the group lists cooperative-sticky: joining again on the incremental protocol")
			ph.p.bridge.Store(false)
			stop()
			return
		}
	}
}

// groupProtocol is the strategy the coordinator picked for the group's current generation.
func (ph *phase) groupProtocol() (string, error) {
	admin, err := sarama.NewClusterAdmin(ph.p.set.brokers, ph.p.sarama)
	if err != nil {
		return "", err
	}
	defer func() { _ = admin.Close() }()
	gs, err := admin.DescribeConsumerGroups([]string{ph.p.set.group})
	if err != nil {
		return "", err
	}
	if len(gs) != 1 {
		return "", errors.New("no description of the consumer group")
	}
	if !errors.Is(gs[0].Err, sarama.ErrNoError) {
		return "", gs[0].Err
	}
	return gs[0].Protocol, nil
}
