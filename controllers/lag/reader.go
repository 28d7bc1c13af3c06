// Package lag reads partition counts, newest, oldest and committed offsets from Kafka for the
// operator. One Reader serves every pipeline: pipelines on the same cluster (same bootstrap
// servers and credentials) share one sarama client and ClusterAdmin, and share the broker-wide
// offset reads, so the cost of a poll grows with brokers and consumer groups, not partitions.
package lag

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// ErrTopicNotFound reports a consumed topic that does not exist.
var ErrTopicNotFound = errors.New("topic not found")

// TopicError is a topic the cluster reports an error for.
type TopicError struct {
	Topic string
	Err   error
}

func (e *TopicError) Error() string { return fmt.Sprintf("topic %q: %v", e.Topic, e.Err) }
func (e *TopicError) Unwrap() error { return e.Err }

// Options tune a Reader.
type Options struct {
	// Timeout bounds each network step (dial, request). Default 10s.
	Timeout time.Duration
	// OldestMaxAge is how long oldest (log start) offsets are reused; they only move with
	// retention. Default 1m.
	OldestMaxAge time.Duration
}

// Query is one pipeline's poll.
type Query struct {
	// Pipeline identifies the pipeline (namespace/name); it holds a reference on the connection.
	Pipeline string
	Conn     Connection
	Topics   []string
	Group    string
	// MaxAge is how old the shared metadata and newest offsets may be; a fresher read by another
	// pipeline of the same cluster is reused. Zero reads afresh.
	MaxAge time.Duration
}

// Result is what one poll saw.
type Result struct {
	// Partitions holds the partition count of each topic.
	Partitions map[string]int32
	// Offsets holds every partition of every topic, sorted by topic and partition.
	Offsets []scaling.Offsets
	// NewestAt is when the log-end (newest) offsets were read: the read may be shared with
	// other pipelines of the same cluster, so it can be older than the poll. CommittedAt is
	// when the group's committed offsets were fetched. Rates divide by these, not by the time
	// between reconciles.
	NewestAt, CommittedAt time.Time
}

// Reader is the shared lag reader. It is safe for concurrent use.
type Reader struct {
	opts  Options
	mu    sync.Mutex
	conns map[string]*conn  // by connection key
	users map[string]string // pipeline -> connection key
}

// NewReader returns a Reader.
func NewReader(opts Options) *Reader {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.OldestMaxAge <= 0 {
		opts.OldestMaxAge = time.Minute
	}
	return &Reader{opts: opts, conns: map[string]*conn{}, users: map[string]string{}}
}

// Poll reads the pipeline's topics and group. Errors wrap ErrTopicNotFound (in a TopicError)
// when a topic is missing; any other error means Kafka could not be read.
func (r *Reader) Poll(ctx context.Context, q Query) (*Result, error) {
	c := r.acquire(q)
	return c.poll(ctx, q, r.opts)
}

// Release drops a pipeline's reference; a connection no pipeline uses is closed.
func (r *Reader) Release(pipeline string) {
	r.mu.Lock()
	key, ok := r.users[pipeline]
	delete(r.users, pipeline)
	var closing *conn
	if ok {
		c := r.conns[key]
		delete(c.users, pipeline)
		if len(c.users) == 0 {
			delete(r.conns, key)
			closing = c
		}
	}
	r.mu.Unlock()
	if closing != nil {
		closing.close()
	}
}

// Connections is the number of open connections (clients), for tests and metrics.
func (r *Reader) Connections() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

// Close closes every connection.
func (r *Reader) Close() {
	r.mu.Lock()
	conns := r.conns
	r.conns, r.users = map[string]*conn{}, map[string]string{}
	r.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// acquire registers the pipeline on the connection for q.Conn, moving it off another one.
func (r *Reader) acquire(q Query) *conn {
	key := q.Conn.Key()
	r.mu.Lock()
	var closing *conn
	if old, ok := r.users[q.Pipeline]; ok && old != key {
		oc := r.conns[old]
		delete(oc.users, q.Pipeline)
		if len(oc.users) == 0 {
			delete(r.conns, old)
			closing = oc
		}
	}
	c := r.conns[key]
	if c == nil {
		c = &conn{key: key, users: map[string][]string{}, sem: make(chan struct{}, 1)}
		r.conns[key] = c
	}
	c.users[q.Pipeline] = slices.Clone(q.Topics)
	r.users[q.Pipeline] = key
	topics := c.unionLocked()
	r.mu.Unlock()
	c.setTopics(topics)
	if closing != nil {
		closing.close()
	}
	return c
}

type partitionInfo struct {
	leader int32
	err    error
}

// conn is one cluster connection and its shared reads.
type conn struct {
	key   string
	users map[string][]string // pipeline -> topics; guarded by Reader.mu

	// sem serialises reads and guards what follows. It is a channel so that a poll waiting
	// behind a slow one gives up with its context.
	sem    chan struct{}
	closed bool
	admin  sarama.ClusterAdmin
	tmu    sync.Mutex // guards topics
	topics []string   // union of the users' topics
	client sarama.Client
	conf   *sarama.Config

	readAt     time.Time
	readTopics map[string]bool
	topicErr   map[string]error
	parts      map[string][]int32
	newest     map[scaling.TopicPartition]int64
	oldest     map[scaling.TopicPartition]int64
	oldestAt   time.Time
}

func (c *conn) unionLocked() []string {
	set := map[string]bool{}
	for _, ts := range c.users {
		for _, t := range ts {
			set[t] = true
		}
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func (c *conn) lock(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for another read of the same cluster: %w", ctx.Err())
	}
}

func (c *conn) unlock() { <-c.sem }

func (c *conn) setTopics(t []string) {
	c.tmu.Lock()
	c.topics = t
	c.tmu.Unlock()
}

func (c *conn) unionTopics() []string {
	c.tmu.Lock()
	defer c.tmu.Unlock()
	return c.topics
}

func (c *conn) close() {
	c.sem <- struct{}{}
	defer c.unlock()
	c.closed = true
	if c.admin != nil {
		_ = c.admin.Close() // closes the client too
	}
	c.admin, c.client = nil, nil
}

// connect opens the client and admin on first use (c.sem held).
func (c *conn) connect(q Query, opts Options) error {
	if c.closed {
		return errors.New("connection closed")
	}
	if c.client != nil && !c.client.Closed() {
		return nil
	}
	conf, err := saramaConfig(q.Conn, opts.Timeout)
	if err != nil {
		return err
	}
	client, err := sarama.NewClient(q.Conn.BootstrapServers, conf)
	if err != nil {
		return fmt.Errorf("connect to %v: %w", q.Conn.BootstrapServers, err)
	}
	// Learn the brokers and the controller (metadata is never fetched for all topics). An
	// error for a missing topic does not matter here: it shows up per topic on the first read.
	if err := client.RefreshMetadata(c.unionTopics()...); err != nil {
		if _, cerr := client.Controller(); cerr != nil {
			_ = client.Close()
			return fmt.Errorf("read metadata from %v: %w", q.Conn.BootstrapServers, err)
		}
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		_ = client.Close()
		return fmt.Errorf("create cluster admin: %w", err)
	}
	c.client, c.admin, c.conf = client, admin, conf
	return nil
}

// reset drops the client after a network failure so the next poll reconnects.
func (c *conn) reset() {
	if c.admin != nil {
		_ = c.admin.Close()
	}
	c.admin, c.client = nil, nil
	c.readAt = time.Time{}
}

func (c *conn) poll(ctx context.Context, q Query, opts Options) (*Result, error) {
	if err := c.lock(ctx); err != nil {
		return nil, err
	}
	defer c.unlock()
	if err := c.connect(q, opts); err != nil {
		return nil, err
	}
	committedAt := time.Now()
	committed, err := c.committed(q)
	if err != nil {
		c.maybeReset(err)
		return nil, fmt.Errorf("fetch committed offsets of group %q: %w", q.Group, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.stale(q, committedAt) {
		if err := c.read(opts); err != nil {
			c.maybeReset(err)
			return nil, err
		}
	}
	return c.result(q, committed, committedAt)
}

func (c *conn) maybeReset(err error) {
	var kerr sarama.KError
	if errors.As(err, &kerr) {
		return // the cluster answered: the connection is fine
	}
	c.reset()
}

// stale reports whether the shared read is too old or misses one of the query's topics.
func (c *conn) stale(q Query, now time.Time) bool {
	if c.readAt.IsZero() || now.Sub(c.readAt) > q.MaxAge || q.MaxAge <= 0 {
		return true
	}
	for _, t := range q.Topics {
		if !c.readTopics[t] {
			return true
		}
	}
	return false
}

// read refreshes metadata and newest offsets (and oldest offsets when due) for the union of
// the connection's topics: one Metadata request, then one ListOffsets request per leader.
func (c *conn) read(opts Options) error {
	topics := c.unionTopics()
	broker := c.client.LeastLoadedBroker()
	if broker == nil {
		return errors.New("no broker available")
	}
	if ok, _ := broker.Connected(); !ok {
		_ = broker.Open(c.conf) // an error shows up on the request
	}
	req := sarama.NewMetadataRequest(c.conf.Version, topics)
	req.AllowAutoTopicCreation = false
	md, err := broker.GetMetadata(req)
	if err != nil {
		return fmt.Errorf("read metadata from %s: %w", broker.Addr(), err)
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
	newest, err := c.listOffsets(leaders, sarama.OffsetNewest)
	if err != nil {
		return err
	}
	if wantOldest {
		oldest, err := c.listOffsets(leaders, sarama.OffsetOldest)
		if err != nil {
			return err
		}
		c.oldest, c.oldestAt = oldest, now
	}
	c.parts, c.topicErr, c.newest = parts, topicErr, newest
	c.readAt = now
	c.readTopics = map[string]bool{}
	for _, t := range topics {
		c.readTopics[t] = true
	}
	return nil
}

// listOffsets sends one ListOffsets request per leader broker, in parallel.
func (c *conn) listOffsets(leaders map[scaling.TopicPartition]partitionInfo, at int64) (map[scaling.TopicPartition]int64, error) {
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := sarama.NewOffsetRequest(c.conf.Version)
			for _, tp := range tps {
				req.AddBlock(tp.Topic, tp.Partition, at, 1)
			}
			resp, err := b.GetAvailableOffsets(req)
			if err != nil {
				answers <- answer{err: fmt.Errorf("list offsets on broker %d (%s): %w", id, b.Addr(), err)}
				return
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
			answers <- answer{offsets: out}
		}()
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
		for tp, o := range a.offsets {
			all[tp] = o
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return all, nil
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

// committed fetches the group's committed offsets for the query's topics with one OffsetFetch
// request to the group coordinator. It uses the partition lists of the last read when it has
// them; otherwise it asks for all partitions of the topics (a nil partition list).
func (c *conn) committed(q Query) (map[scaling.TopicPartition]int64, error) {
	req := map[string][]int32{}
	known := true
	for _, t := range q.Topics {
		ps, ok := c.parts[t]
		if !ok {
			known = false
			break
		}
		req[t] = ps
	}
	if !known {
		req = nil // all the group's committed partitions
	}
	resp, err := c.admin.ListConsumerGroupOffsets(q.Group, req)
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		return map[scaling.TopicPartition]int64{}, nil // a group that never committed
	}
	if err != nil {
		return nil, err
	}
	out := map[scaling.TopicPartition]int64{}
	for t, blocks := range resp.Blocks {
		for p, blk := range blocks {
			if blk == nil || !errors.Is(blk.Err, sarama.ErrNoError) {
				continue
			}
			out[scaling.TopicPartition{Topic: t, Partition: p}] = blk.Offset
		}
	}
	return out, nil
}

func (c *conn) result(q Query, committed map[scaling.TopicPartition]int64, committedAt time.Time) (*Result, error) {
	var errs []error
	res := &Result{Partitions: map[string]int32{}, NewestAt: c.readAt, CommittedAt: committedAt}
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
	sort.Slice(res.Offsets, func(i, j int) bool {
		a, b := res.Offsets[i], res.Offsets[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
	return res, nil
}
