package lag

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/kpipe-io/kpipe/controllers/scaling"
	"github.com/kpipe-io/kpipe/internal/telemetry"
)

// groupRead is one group's committed offsets as last fetched, or why they could not be.
type groupRead struct {
	at      time.Time // when the fetch began
	topics  []string  // the topics asked for
	offsets map[scaling.TopicPartition]int64
	// records are the telemetry records the commits carried (see decodeRecords).
	records map[scaling.TopicPartition]*telemetry.Record
	// group is the group's state and members, nil when DescribeGroups did not say.
	group *GroupState
	err   error
}

// serves reports whether the read answers a poll of the topics that accepts reads up to
// maxAge old. A failed read never does: the next poll asks again.
func (g *groupRead) serves(topics []string, maxAge time.Duration, now time.Time) bool {
	if g == nil || g.err != nil || maxAge <= 0 || now.Sub(g.at) > maxAge {
		return false
	}
	for _, t := range topics {
		if !slices.Contains(g.topics, t) {
			return false
		}
	}
	return true
}

// committedOf returns the committed offsets of the query's group (c.sem held). A fetch by
// another pipeline's poll at most q.MaxAge old serves it. Otherwise it fetches them, and with
// them every registered group whose last fetch is missing or older than half of q.MaxAge: one
// OffsetFetch per group coordinator carries them all, so a cluster's pipelines cost about two
// such requests per coordinator per poll interval, however many they are. A group's own
// error (not authorized, coordinator moving) stays with that group.
func (c *conn) committedOf(q Query, now time.Time) (*groupRead, error) {
	if gr := c.groups[q.Group]; gr.serves(q.Topics, q.MaxAge, now) {
		return gr, nil
	}
	reads := c.fetchCommitted(c.dueGroups(q, now))
	if c.groups == nil {
		c.groups = make(map[string]*groupRead, len(reads))
	}
	maps.Copy(c.groups, reads)
	gr := reads[q.Group]
	if gr.err != nil {
		// A network failure drops the client; another group's failure waits for its own poll.
		c.maybeReset(gr.err)
		return nil, fmt.Errorf("fetch committed offsets of group %q: %w", q.Group, gr.err)
	}
	return gr, nil
}

// dueGroups is the groups to fetch with the query's own, each with its topics; it forgets
// the reads of groups no pipeline uses any more. A query with MaxAge 0 fetches its group alone.
func (c *conn) dueGroups(q Query, now time.Time) map[string][]string {
	all := c.users.groupTopics()
	for g := range c.groups {
		if _, ok := all[g]; !ok {
			delete(c.groups, g)
		}
	}
	own := all[q.Group]
	for _, t := range q.Topics {
		if !slices.Contains(own, t) {
			own = append(own, t)
		}
	}
	want := map[string][]string{q.Group: own}
	if q.MaxAge <= 0 {
		return want
	}
	for g, topics := range all {
		if g != q.Group && !c.groups[g].serves(topics, q.MaxAge/2, now) {
			want[g] = topics
		}
	}
	return want
}

// fetchCommitted fetches the groups' committed offsets, in parallel per coordinator, and
// returns a read for every group.
func (c *conn) fetchCommitted(want map[string][]string) map[string]*groupRead {
	at := time.Now()
	out := make(map[string]*groupRead, len(want))
	batches := map[int32][]string{}
	coordinators := map[int32]*sarama.Broker{}
	for g, topics := range want {
		b, err := c.client.Coordinator(g)
		if err != nil {
			out[g] = &groupRead{at: at, topics: topics, err: fmt.Errorf("find the group coordinator: %w", err)}
			continue
		}
		batches[b.ID()] = append(batches[b.ID()], g)
		coordinators[b.ID()] = b
	}
	type answer struct {
		reads       map[string]*groupRead
		singleGroup bool
	}
	answers := make(chan answer, len(batches))
	var wg sync.WaitGroup
	for id, groups := range batches {
		wg.Go(func() {
			reads, single := c.fetchOn(coordinators[id], groups, want, at)
			answers <- answer{reads: reads, singleGroup: single}
		})
	}
	wg.Wait()
	close(answers)
	for a := range answers {
		maps.Copy(out, a.reads)
		c.singleGroup = c.singleGroup || a.singleGroup
	}
	return out
}

// fetchOn fetches the groups of one coordinator: with one OffsetFetch (version 8, Kafka 3.0
// and later) for several groups, or one per group when the broker or the configured protocol
// version is older; then their states with one DescribeGroups. It reports whether it had to
// fall back for the OffsetFetch.
func (c *conn) fetchOn(b *sarama.Broker, groups []string, want map[string][]string, at time.Time) (map[string]*groupRead, bool) {
	out := make(map[string]*groupRead, len(groups))
	defer c.describeOn(b, slices.Clone(groups), out)
	fellBack := false
	if len(groups) > 1 && !c.singleGroup && c.conf.Version.IsAtLeast(sarama.V3_0_0_0) {
		retry, err := c.fetchBatch(b, groups, want, at, out)
		_, fellBack = errors.AsType[sarama.PacketEncodingError](err) // the broker speaks OffsetFetch below version 8
		if !fellBack {
			groups = retry // those whose coordinator moved: fetched alone below
		}
	}
	for _, g := range groups {
		out[g] = c.fetchOne(g, want[g], at)
	}
	return out, fellBack
}

// fetchBatch sends one OffsetFetch version 8 for the groups to their coordinator and fills in
// their reads. It returns the groups to retry alone because the coordinator moved or is
// loading, and the request's error: a sarama.PacketEncodingError when the broker's newest
// OffsetFetch is older than version 8 (nothing was sent), any other a failed request.
func (c *conn) fetchBatch(b *sarama.Broker, groups []string, want map[string][]string, at time.Time, out map[string]*groupRead) ([]string, error) {
	req := &sarama.OffsetFetchRequest{Version: 8}
	for _, g := range groups {
		req.Groups = append(req.Groups, sarama.OffsetFetchRequestGroup{GroupId: g, Partitions: c.partitionsOf(want[g])})
	}
	resp, err := b.FetchOffset(req)
	if _, tooOld := errors.AsType[sarama.PacketEncodingError](err); tooOld {
		return nil, err
	}
	if err != nil {
		for _, g := range groups {
			out[g] = &groupRead{at: at, topics: want[g], err: fmt.Errorf("offset fetch from coordinator %d (%s): %w", b.ID(), b.Addr(), err)}
		}
		return nil, err
	}
	answered := make(map[string]*sarama.OffsetFetchResponseGroup, len(resp.Groups)) // GetGroup scans: quadratic in groups
	for i := range resp.Groups {
		answered[resp.Groups[i].GroupId] = &resp.Groups[i]
	}
	var retry []string
	for _, g := range groups {
		rg := answered[g]
		switch {
		case rg == nil:
			out[g] = &groupRead{at: at, topics: want[g], err: fmt.Errorf("coordinator %d did not answer for the group", b.ID())}
		case coordinatorMoved(rg.Err):
			_ = c.client.RefreshCoordinator(g)
			retry = append(retry, g)
		default:
			out[g] = toGroupRead(rg.Blocks, rg.Err, want[g], at)
		}
	}
	return retry, nil
}

// fetchOne fetches one group's committed offsets; the admin finds its coordinator and retries
// when it moved.
func (c *conn) fetchOne(group string, topics []string, at time.Time) *groupRead {
	resp, err := c.admin.ListConsumerGroupOffsets(group, c.partitionsOf(topics))
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		return toGroupRead(nil, sarama.ErrNoError, topics, at) // a group that never committed
	}
	if err != nil {
		return &groupRead{at: at, topics: topics, err: err}
	}
	blocks := resp.Blocks
	if resp.Version >= 8 && len(resp.Groups) > 0 {
		blocks = resp.Groups[0].Blocks
	}
	return toGroupRead(blocks, sarama.ErrNoError, topics, at)
}

func coordinatorMoved(err sarama.KError) bool {
	return errors.Is(err, sarama.ErrNotCoordinatorForConsumer) || errors.Is(err, sarama.ErrOffsetsLoadInProgress) ||
		errors.Is(err, sarama.ErrConsumerCoordinatorNotAvailable)
}

// toGroupRead turns a group's answer into its read. A group that never committed has no
// offsets; a partition answered with an error has none either.
func toGroupRead(blocks map[string]map[int32]*sarama.OffsetFetchResponseBlock, gerr sarama.KError, topics []string, at time.Time) *groupRead {
	gr := &groupRead{at: at, topics: topics, offsets: map[scaling.TopicPartition]int64{}, records: decodeRecords(blocks)}
	if !errors.Is(gerr, sarama.ErrNoError) && !errors.Is(gerr, sarama.ErrGroupIDNotFound) {
		gr.err = gerr
		return gr
	}
	for t, bs := range blocks {
		for p, blk := range bs {
			if blk != nil && errors.Is(blk.Err, sarama.ErrNoError) {
				gr.offsets[scaling.TopicPartition{Topic: t, Partition: p}] = blk.Offset
			}
		}
	}
	return gr
}

// partitionsOf lists the topics' partitions from the last metadata read, or nil (every
// partition the group committed) when a topic is not known yet.
func (c *conn) partitionsOf(topics []string) map[string][]int32 {
	out := make(map[string][]int32, len(topics))
	for _, t := range topics {
		ps, ok := c.parts[t]
		if !ok {
			return nil
		}
		out[t] = ps
	}
	return out
}
