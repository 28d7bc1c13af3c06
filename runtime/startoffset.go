package runtime

import (
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/kpipe-io/kpipe/internal/telemetry"
)

// A claimed partition with no committed offset gets its starting offset committed, so that
// the operator sees where the group stands on it. Without, a spec.initialOffset Latest
// pipeline with a partition that never receives a message has no commit there for ever, and
// the operator, which cannot tell that partition's lag, keeps a replica running for it.
//
// sarama's session creates the offset managers of the claimed partitions, then calls Setup,
// then starts each claim at its manager's offset, or at Consumer.Offsets.Initial (resolved by
// the partition consumer) when there is none. So Setup resolves the start itself, with the
// same request sarama would send (client.GetOffset with OffsetNewest or OffsetOldest), and
// marks it with the session: the claim then starts exactly there, and the next commit
// persists it. Messages produced after that point are consumed; none is skipped, because the
// claim starts at the offset committed.
//
// Partitions added to a running session by an incremental (cooperative-sticky) rebalance do
// not go through Setup: sarama manages and starts them at once, resolving the start itself,
// and does not tell the handler which offset it used (the claim's InitialOffset is then
// OffsetNewest or OffsetOldest). Resolving it again later could commit past messages produced
// in between, so such a partition is committed at its first finished message, or by the next
// session's Setup (after a rebalance of the eager protocol, a restart, or an idle penalty).
//
// In ExactlyOnce the start reaches Kafka through the transaction's offsets when a transaction
// commits, else through the group's commit that refreshes the telemetry of unmoved offsets
// (transaction.go): committing the offset a claim starts at, before any of its messages is
// processed, is never ahead of an output.

// markStarts marks in sess the starting offset of each claimed partition that has no
// committed offset. On failure the claims start where sarama resolves them, as before.
func (h *claims) markStarts(sess sarama.ConsumerGroupSession) {
	missing, err := h.uncommitted(sess.Claims())
	if err != nil {
		h.log.Warn("cannot tell which claimed partitions have a committed offset; their start is committed with their first message", "err", err)
		return
	}
	initial := h.consumer.Consumer.Offsets.Initial
	meta := telemetry.Encode(telemetry.Record{At: time.Now(), Replica: h.tel.replica})
	for _, tp := range missing {
		off, err := h.client.GetOffset(tp.topic, tp.partition, initial)
		if err != nil {
			h.log.Warn("cannot resolve the starting offset; it is committed with the first message",
				"topic", tp.topic, "partition", tp.partition, "err", err)
			continue
		}
		sess.MarkOffset(tp.topic, tp.partition, off, meta)
		h.log.Info("partition without a committed offset: committing where it starts",
			"topic", tp.topic, "partition", tp.partition, "offset", off)
	}
}

// uncommitted is the partitions of claimed that have no committed offset in the group: one
// OffsetFetch to the coordinator.
func (h *claims) uncommitted(claimed map[string][]int32) ([]topicPartition, error) {
	coordinator, err := h.client.Coordinator(h.set.group)
	if err != nil {
		return nil, err
	}
	resp, err := coordinator.FetchOffset(sarama.NewOffsetFetchRequest(h.consumer.Version, h.set.group, claimed))
	if err != nil {
		return nil, err
	}
	if err := offsetFetchError(resp); err != nil {
		return nil, err
	}
	var missing []topicPartition
	for topic, partitions := range claimed {
		for _, p := range partitions {
			b := resp.GetBlock(topic, p)
			switch {
			case b == nil:
				return nil, fmt.Errorf("offset fetch: no answer for %s/%d", topic, p)
			case !errors.Is(b.Err, sarama.ErrNoError):
				return nil, fmt.Errorf("offset fetch %s/%d: %w", topic, p, b.Err)
			case b.Offset < 0:
				missing = append(missing, topicPartition{topic, p})
			}
		}
	}
	return missing, nil
}

// offsetFetchError is the error of the whole response, where the version has one.
func offsetFetchError(resp *sarama.OffsetFetchResponse) error {
	kerr := resp.Err
	if resp.Version >= 8 && len(resp.Groups) > 0 {
		kerr = resp.Groups[0].Err
	}
	if !errors.Is(kerr, sarama.ErrNoError) {
		return fmt.Errorf("offset fetch: %w", kerr)
	}
	return nil
}
