package lag

import (
	"cmp"
	"errors"
	"slices"

	"github.com/IBM/sarama"

	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// markerGap is the largest lag checked for records the group never receives. A consumer
// commits the offset after the last record it got; a transaction's commit marker (and, for a
// group reading committed records, an aborted transaction) after it is never delivered, so
// without the check the lag of a transactional topic would stay at one or more for ever and
// the pipeline would never idle to zero.
const markerGap = 16

// stableReads is what settle keeps between polls, under conn.sem.
type stableReads struct {
	leaders map[scaling.TopicPartition]partitionInfo // of the last read
	// seen is the lag span each group's partition had at the last poll, cleared the span
	// found to hold no record the group receives.
	seen, cleared map[groupPartition]span
}

type groupPartition struct {
	group         string
	readCommitted bool
	tp            scaling.TopicPartition
}

type span struct{ from, to int64 }

// settle corrects the offsets of transactional topics, in place. Newest is the last stable
// offset, so the records of open transactions are not lag:
//   - a group reading uncommitted records may have committed past it, up to the high
//     watermark: its newest offset is then its committed one, not an out-of-range commit;
//   - a small lag that did not move since the last poll is checked with one fetch: when the
//     span holds only transaction markers (and aborted records, for a group reading
//     committed records), the group has consumed everything it will get, and its committed
//     offset is taken as the newest.
func (c *conn) settle(q Query, offs []scaling.Offsets) {
	var ahead []int
	for i := range offs {
		o := &offs[i]
		switch gap := o.Newest - o.Committed; {
		case o.Committed < 0:
		case gap < 0:
			ahead = append(ahead, i)
		case gap <= markerGap:
			c.skipUnreceived(q, o)
		}
	}
	if len(ahead) > 0 {
		c.settleAhead(offs, ahead)
	}
}

// settleAhead reads the high watermarks of the partitions whose commit is past the last
// stable offset, with one ListOffsets request per leader.
func (c *conn) settleAhead(offs []scaling.Offsets, ahead []int) {
	leaders := map[scaling.TopicPartition]partitionInfo{}
	for _, i := range ahead {
		if pi, ok := c.stable.leaders[offs[i].TopicPartition]; ok {
			leaders[offs[i].TopicPartition] = pi
		}
	}
	hwm, err := c.listOffsets(leaders, sarama.OffsetNewest, sarama.ReadUncommitted)
	if err != nil {
		return // the commit stays out of range for this poll
	}
	for _, i := range ahead {
		if h, ok := hwm[offs[i].TopicPartition]; ok && offs[i].Committed <= h {
			offs[i].Newest = offs[i].Committed
		}
	}
}

// skipUnreceived raises o.Committed to o.Newest when the records between them are none the
// group receives; it checks a span once it was seen on two polls in a row.
func (c *conn) skipUnreceived(q Query, o *scaling.Offsets) {
	st := &c.stable
	if st.seen == nil || len(st.seen)+len(st.cleared) > 1<<16 { // forget groups long gone
		st.seen, st.cleared = map[groupPartition]span{}, map[groupPartition]span{}
	}
	k := groupPartition{group: q.Group, readCommitted: q.ReadCommitted, tp: o.TopicPartition}
	s := span{from: o.Committed, to: o.Newest}
	if st.cleared[k] == s {
		o.Committed = o.Newest
		return
	}
	if st.seen[k] != s {
		st.seen[k] = s
		return
	}
	receives, err := c.receives(o.TopicPartition, s, q.ReadCommitted)
	if err != nil || receives {
		return
	}
	delete(st.seen, k)
	st.cleared[k] = s
	o.Committed = o.Newest
}

// receives fetches the span from the partition's leader, reading committed records, and
// reports whether it holds a record the group would receive. What the answer does not cover
// counts as received.
func (c *conn) receives(tp scaling.TopicPartition, s span, readCommitted bool) (bool, error) {
	pi, ok := c.stable.leaders[tp]
	if !ok || pi.err != nil || !c.conf.Version.IsAtLeast(sarama.V0_11_0_0) {
		return true, nil
	}
	b, err := c.brokerFor(pi.leader)
	if err != nil {
		return true, err
	}
	req := &sarama.FetchRequest{Version: 4, MaxBytes: 1 << 20, Isolation: sarama.ReadCommitted}
	req.AddBlock(tp.Topic, tp.Partition, s.from, 1<<20, -1)
	resp, err := b.Fetch(req)
	if err != nil {
		return true, err
	}
	blk := resp.GetBlock(tp.Topic, tp.Partition)
	if blk == nil || !errors.Is(blk.Err, sarama.ErrNoError) {
		return true, nil
	}
	return receivedIn(blk, s, readCommitted), nil
}

// receivedIn reports whether the fetched batches hold a record of the span a consumer is given:
// not a control record, nor, reading committed records, one of an aborted transaction.
func receivedIn(blk *sarama.FetchResponseBlock, s span, readCommitted bool) bool {
	aborted := map[int64]bool{} // producer ids of aborted transactions started so far
	pending := slices.SortedFunc(slices.Values(blk.AbortedTransactions), func(a, b *sarama.AbortedTransaction) int {
		return cmp.Compare(a.FirstOffset, b.FirstOffset)
	})
	next := s.from
	for _, rs := range blk.RecordsSet {
		rb := rs.RecordBatch
		if rb == nil {
			return true // a legacy message set: no transactions there
		}
		for len(pending) > 0 && pending[0].FirstOffset <= rb.LastOffset() {
			aborted[pending[0].ProducerID] = true
			pending = pending[1:]
		}
		switch {
		case rb.LastOffset() < s.from:
			continue
		case rb.FirstOffset >= s.to:
			return next < s.to
		case rb.Control:
			delete(aborted, rb.ProducerID) // the transaction ended here
		case readCommitted && rb.IsTransactional && aborted[rb.ProducerID]:
		default:
			for _, r := range rb.Records {
				if off := rb.FirstOffset + r.OffsetDelta; off >= s.from && off < s.to {
					return true
				}
			}
		}
		next = rb.LastOffset() + 1
	}
	return next < s.to
}
