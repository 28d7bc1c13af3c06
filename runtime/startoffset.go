package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
// not go through Setup: sarama manages and starts them at once, and does not tell the handler
// which offset it resolved. But it calls the strategy's OnAssignment (assignmentNotice) when
// SyncGroup returns, before it creates the added partitions' offset managers (which fetch
// their committed offset) and starts their claims. There commitAddedStarts resolves the start
// of those with no commit, as Setup does, and commits it to the coordinator for the new
// generation and the member's id (unchanged by a rejoin that keeps the session); the claims
// then start at the commit. An offset resolved before sarama's own can only be at or below it,
// so nothing sarama would have consumed is skipped. On failure (a newer generation, a new
// member id, no answer within a third of the session timeout, while the heartbeats wait on
// sarama's generation lock) such a partition is committed at its first finished message, or by
// the next session's Setup, as before.
//
// In ExactlyOnce the start reaches Kafka through the transaction's offsets when a transaction
// commits, else through the group's commit that refreshes the telemetry of unmoved offsets
// (transaction.go): committing the offset a claim starts at, before any of its messages is
// processed, is never ahead of an output.

// markStarts marks in sess the starting offset of each claimed partition that has no
// committed offset. On failure the claims start where sarama resolves them, as before.
func (h *claims) markStarts(sess sarama.ConsumerGroupSession) {
	meta := telemetry.Encode(telemetry.Record{At: time.Now(), Replica: h.tel.replica})
	for _, st := range h.missingStarts(h.client, sess.Claims(), "claimed") {
		sess.MarkOffset(st.topic, st.partition, st.offset, meta)
		h.log.Info("partition without a committed offset: committing where it starts",
			"topic", st.topic, "partition", st.partition, "offset", st.offset)
	}
}

// startOffset is where a partition without a committed offset starts.
type startOffset struct {
	topicPartition
	offset int64
}

// missingStarts is the partitions of claimed (what says which, for the logs) that have no
// committed offset, each with the start lister resolves for it (GetOffset with the
// configured initial offset, the request sarama would send). A partition whose start cannot
// be resolved is logged and left out, and so are all when the committed offsets cannot be
// read: their start is then committed with their first message.
func (h *claims) missingStarts(lister sarama.Client, claimed map[string][]int32, what string) []startOffset {
	missing, err := h.uncommitted(claimed)
	if err != nil {
		h.log.Warn("cannot tell which "+what+" partitions have a committed offset; their start is committed with their first message", "err", err)
		return nil
	}
	var starts []startOffset
	for _, tp := range missing {
		off, err := lister.GetOffset(tp.topic, tp.partition, h.consumer.Consumer.Offsets.Initial)
		if err != nil {
			h.log.Warn("cannot resolve the starting offset; it is committed with the first message",
				"topic", tp.topic, "partition", tp.partition, "err", err)
			continue
		}
		starts = append(starts, startOffset{tp, off})
	}
	return starts
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

// commitAddedStarts commits the start of the partitions that an incremental rebalance of
// generation adds to the running session and that have no committed offset. sarama calls it
// (assignmentNotice) right after SyncGroup, before it fetches the added partitions' committed
// offsets and starts their claims, which then start at the offsets committed here. The first
// assignment of a session is left to Setup (markStarts).
//
// sarama holds the session's generation lock meanwhile, which keeps its heartbeats waiting: the
// work gets a third of the session timeout, after which the rebalance goes on without it and
// the partitions left are committed at their first finished message, as before. A commit
// already sent then may land after sarama read the offsets: it is at or below the claim's
// start, so at worst messages are consumed again, none is skipped.
func (h *claims) commitAddedStarts(assigned map[string][]int32, generation int32) {
	h.mu.Lock()
	sess := h.live
	h.mu.Unlock()
	if sess == nil || h.tx != nil {
		return // the session's first join (Setup follows), or ExactlyOnce (eager only)
	}
	added := addedPartitions(assigned, sess.Claims())
	if len(added) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.consumer.Consumer.Group.Session.Timeout/3)
	defer cancel()
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		h.commitStarts(ctx, added, generation, sess.MemberID())
	}()
	select {
	case <-done:
		h.log.Debug("added partitions checked for a committed offset", "took", time.Since(start).String())
	case <-ctx.Done():
		h.log.Warn("committing the start of the added partitions takes too long: going on without; a partition without a commit gets it with its first message",
			"generation", generation)
	}
}

// addedPartitions is the partitions of assigned that owned leaves out.
func addedPartitions(assigned, owned map[string][]int32) map[string][]int32 {
	added := map[string][]int32{}
	for topic, partitions := range assigned {
		for _, p := range partitions {
			if !slices.Contains(owned[topic], p) {
				added[topic] = append(added[topic], p)
			}
		}
	}
	return added
}

// commitStarts commits, for the member of generation, the start of the partitions of added
// that have no committed offset: one OffsetFetch, then one ListOffsets per partition
// missing and one OffsetCommit. It gives up, without committing, once ctx has ended.
func (h *claims) commitStarts(ctx context.Context, added map[string][]int32, generation int32, member string) {
	// The coordinator's client: the fetching client's connection to a leader may be busy
	// with a fetch's long poll.
	starts := h.missingStarts(coordinatorClient(h.client), added, "added")
	if len(starts) == 0 || ctx.Err() != nil {
		return
	}
	req := sarama.NewOffsetCommitRequest(h.consumer, h.set.group)
	req.ConsumerGroupGeneration, req.ConsumerID = generation, member
	if id := h.consumer.Consumer.Group.InstanceId; id != "" && req.Version >= 7 {
		req.GroupInstanceId = &id
	}
	meta := telemetry.Encode(telemetry.Record{At: time.Now(), Replica: h.tel.replica})
	for _, st := range starts {
		req.AddBlockWithLeaderEpoch(st.topic, st.partition, st.offset, -1, 0, meta)
	}
	h.sendStarts(req, starts)
}

// sendStarts sends the commit of the starts resolved and logs its outcome.
func (h *claims) sendStarts(req *sarama.OffsetCommitRequest, starts []startOffset) {
	coordinator, err := h.client.Coordinator(h.set.group)
	if err == nil {
		var resp *sarama.OffsetCommitResponse
		resp, err = coordinator.CommitOffset(req)
		err = errors.Join(err, offsetCommitError(resp, starts))
	}
	if err != nil {
		h.log.Warn("cannot commit the start of the added partitions; it is committed with their first message", "err", err)
		return
	}
	for _, st := range starts {
		h.log.Info("added partition without a committed offset: committed where it starts",
			"topic", st.topic, "partition", st.partition, "offset", st.offset)
	}
}

// offsetCommitError is the first error of resp for the partitions committed.
func offsetCommitError(resp *sarama.OffsetCommitResponse, committed []startOffset) error {
	if resp == nil {
		return nil
	}
	for _, tp := range committed {
		kerr, ok := resp.Errors[tp.topic][tp.partition]
		switch {
		case !ok:
			return fmt.Errorf("offset commit: no answer for %s/%d", tp.topic, tp.partition)
		case !errors.Is(kerr, sarama.ErrNoError):
			return fmt.Errorf("offset commit %s/%d: %w", tp.topic, tp.partition, kerr)
		}
	}
	return nil
}
