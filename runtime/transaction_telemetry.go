package runtime

import "github.com/IBM/sarama"

// In ExactlyOnce the telemetry records travel with the offsets: in the transaction's
// TxnOffsetCommit when a transaction commits, every partition's offset, moved or not, with
// its record. An interval with nothing to commit opens no transaction for the records: they
// are refreshed through the consumer group's own commit instead, with each offset unchanged
// (the one last committed, or the claim's start), which never puts an offset ahead of an
// output.

// txOffset is a partition's offset to commit and its telemetry record.
type txOffset struct {
	pt     *partition
	offset int64
	meta   string
}

// refreshIdle refreshes the records of an interval that commits no transaction, through the
// group's commit of sess. It runs with the admission gate held and no offset added to the
// open transaction, so no transactional offset of this replica is pending for the group.
func (t *transaction) refreshIdle(sess sarama.ConsumerGroupSession, offs []txOffset) {
	if len(offs) == 0 {
		return
	}
	syncGroupOffsets(offs)
	sess.Commit()
}

// syncGroupOffsets hands the offsets to the consumer group session's offset managers, which
// marking through an ExactlyOnce partition's session does not reach (unmarkedSession). The
// managers then never hold an offset below one a transaction committed: sarama's commit when
// the session ends commits what they hold, and must not move an offset back.
func syncGroupOffsets(offs []txOffset) {
	for _, o := range offs {
		pt := o.pt
		pt.mu.Lock()
		pt.handLocked(pt.group, o.offset, o.meta)
		pt.mu.Unlock()
	}
}
