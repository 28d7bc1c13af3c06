package lag

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// partitionInfo is a partition's leader as the metadata reported it, or the partition's error
// when it has no leader.
type partitionInfo struct {
	leader int32
	err    error
}

// read refreshes metadata and newest offsets (and oldest offsets when due) for the union of
// the connection's topics: one Metadata request, then one ListOffsets request per leader.
func (c *conn) read(opts Options) error {
	topics := c.unionTopics()
	parts, topicErr, leaders, err := c.readMetadata(topics)
	if err != nil {
		return err
	}
	now := time.Now()
	wantOldest := c.oldest == nil || now.Sub(c.oldestAt) >= opts.OldestMaxAge
	if !wantOldest {
		for tp := range leaders {
			if _, ok := c.oldest[tp]; !ok {
				wantOldest = true
				break
			}
		}
	}
	// Newest is the last stable offset: records of open transactions are not lag yet for a
	// group reading committed records; for one reading uncommitted ones, settle corrects it.
	newest, err := c.listOffsets(leaders, sarama.OffsetNewest, sarama.ReadCommitted)
	if err != nil {
		return err
	}
	if wantOldest {
		oldest, err := c.listOffsets(leaders, sarama.OffsetOldest, sarama.ReadUncommitted)
		if err != nil {
			return err
		}
		c.oldest, c.oldestAt = oldest, now
	}
	c.parts, c.topicErr, c.newest = parts, topicErr, newest
	c.stable.leaders = leaders
	c.readAt = now
	c.readTopics = map[string]bool{}
	for _, t := range topics {
		c.readTopics[t] = true
	}
	return nil
}

// readMetadata sends one Metadata request for the topics (never creating one) and returns
// each topic's sorted partition ids, the topics reported with an error, and each partition's
// leader.
func (c *conn) readMetadata(topics []string) (map[string][]int32, map[string]error, map[scaling.TopicPartition]partitionInfo, error) {
	broker := c.client.LeastLoadedBroker()
	if broker == nil {
		return nil, nil, nil, errors.New("no broker available")
	}
	if ok, _ := broker.Connected(); !ok {
		_ = broker.Open(c.conf) // an error shows up on the request
	}
	req := sarama.NewMetadataRequest(c.conf.Version, topics)
	req.AllowAutoTopicCreation = false
	md, err := broker.GetMetadata(req)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read metadata from %s: %w", broker.Addr(), err)
	}
	parts := map[string][]int32{}
	topicErr := map[string]error{}
	leaders := map[scaling.TopicPartition]partitionInfo{}
	for _, tm := range md.Topics {
		switch {
		case errors.Is(tm.Err, sarama.ErrUnknownTopicOrPartition):
			topicErr[tm.Name] = ErrTopicNotFound
			continue
		case !errors.Is(tm.Err, sarama.ErrNoError):
			topicErr[tm.Name] = tm.Err
			continue
		}
		ids := make([]int32, 0, len(tm.Partitions))
		for _, pm := range tm.Partitions {
			ids = append(ids, pm.ID)
			pi := partitionInfo{leader: pm.Leader}
			if !errors.Is(pm.Err, sarama.ErrNoError) && pm.Leader < 0 {
				pi.err = pm.Err
			}
			leaders[scaling.TopicPartition{Topic: tm.Name, Partition: pm.ID}] = pi
		}
		slices.Sort(ids)
		parts[tm.Name] = ids
	}
	return parts, topicErr, leaders, nil
}

// listOffsets sends one ListOffsets request per leader broker, in parallel. The isolation
// level matters for the newest offset: the last stable offset or the high watermark.
func (c *conn) listOffsets(leaders map[scaling.TopicPartition]partitionInfo, at int64, iso sarama.IsolationLevel) (map[scaling.TopicPartition]int64, error) {
	byLeader := map[int32][]scaling.TopicPartition{}
	for tp, pi := range leaders {
		if pi.err == nil && pi.leader >= 0 {
			byLeader[pi.leader] = append(byLeader[pi.leader], tp)
		}
	}
	type answer struct {
		offsets map[scaling.TopicPartition]int64
		err     error
	}
	answers := make(chan answer, len(byLeader))
	var wg sync.WaitGroup
	for id, tps := range byLeader {
		b, err := c.brokerFor(id)
		if err != nil {
			return nil, err
		}
		wg.Go(func() {
			offsets, err := c.listOffsetsOn(b, tps, at, iso)
			answers <- answer{offsets: offsets, err: err}
		})
	}
	wg.Wait()
	close(answers)
	all := map[scaling.TopicPartition]int64{}
	var errs []error
	for a := range answers {
		if a.err != nil {
			errs = append(errs, a.err)
			continue
		}
		maps.Copy(all, a.offsets)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return all, nil
}

// listOffsetsOn sends one ListOffsets request to a leader broker for its partitions. A
// partition the broker reports without offsets is left out.
func (c *conn) listOffsetsOn(b *sarama.Broker, tps []scaling.TopicPartition, at int64, iso sarama.IsolationLevel) (map[scaling.TopicPartition]int64, error) {
	req := sarama.NewOffsetRequest(c.conf.Version)
	if req.Version >= 2 { // before Kafka 0.11 there are no transactions
		req.IsolationLevel = iso
	}
	for _, tp := range tps {
		req.AddBlock(tp.Topic, tp.Partition, at, 1)
	}
	resp, err := b.GetAvailableOffsets(req)
	if err != nil {
		return nil, fmt.Errorf("list offsets on broker %d (%s): %w", b.ID(), b.Addr(), err)
	}
	out := make(map[scaling.TopicPartition]int64, len(tps))
	for _, tp := range tps {
		blk := resp.GetBlock(tp.Topic, tp.Partition)
		if blk == nil || !errors.Is(blk.Err, sarama.ErrNoError) {
			continue // the partition is reported without offsets
		}
		off := blk.Offset
		if req.Version == 0 && len(blk.Offsets) > 0 {
			off = blk.Offsets[0]
		}
		out[tp] = off
	}
	return out, nil
}

// brokerFor returns the connected broker with the given id.
func (c *conn) brokerFor(id int32) (*sarama.Broker, error) {
	if b, err := c.client.Broker(id); err == nil {
		return b, nil
	}
	// A broker the client has not registered yet: let it learn the brokers again. Errors
	// about single topics do not matter here.
	_ = c.client.RefreshMetadata(c.unionTopics()...)
	b, err := c.client.Broker(id)
	if err != nil {
		return nil, fmt.Errorf("broker %d: %w", id, err)
	}
	return b, nil
}

// result is the query's answer from the shared reads and the group's read.
func (c *conn) result(q Query, gr *groupRead) (*Result, error) {
	var errs []error
	committed, committedAt := gr.offsets, gr.at
	res := &Result{Partitions: map[string]int32{}, NewestAt: c.readAt, CommittedAt: committedAt, Records: gr.records, Group: gr.group}
	for _, t := range q.Topics {
		if err, ok := c.topicErr[t]; ok {
			errs = append(errs, &TopicError{Topic: t, Err: err})
			continue
		}
		ps, ok := c.parts[t]
		if !ok {
			errs = append(errs, &TopicError{Topic: t, Err: ErrTopicNotFound})
			continue
		}
		res.Partitions[t] = int32(len(ps))
		for _, p := range ps {
			tp := scaling.TopicPartition{Topic: t, Partition: p}
			newest, ok := c.newest[tp]
			if !ok {
				errs = append(errs, fmt.Errorf("no offsets for partition %s: it has no leader or its leader did not answer", tp))
				continue
			}
			o := scaling.Offsets{TopicPartition: tp, Newest: newest, Oldest: -1, Committed: -1}
			if old, ok := c.oldest[tp]; ok {
				o.Oldest = old
			}
			if off, ok := committed[tp]; ok {
				o.Committed = off
			}
			// Newest offsets read by another pipeline before this group's commit was fetched
			// may be behind it: that is not an out-of-range commit, only a stale read.
			if c.readAt.Before(committedAt) && o.Committed > o.Newest {
				o.Newest = o.Committed
			}
			res.Offsets = append(res.Offsets, o)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.settle(q, res.Offsets)
	slices.SortFunc(res.Offsets, func(a, b scaling.Offsets) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return res, nil
}
