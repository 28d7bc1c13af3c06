package lag

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// conn is one cluster connection and its shared reads.
type conn struct {
	key   string
	users *users // the pipelines reading through this connection

	// sem serialises reads and guards what follows. It is a channel so that a poll waiting
	// behind a slow one gives up with its context.
	sem    chan struct{}
	closed bool
	admin  sarama.ClusterAdmin
	client sarama.Client
	conf   *sarama.Config

	readAt     time.Time
	readTopics map[string]bool
	topicErr   map[string]error
	parts      map[string][]int32
	newest     map[scaling.TopicPartition]int64
	oldest     map[scaling.TopicPartition]int64
	oldestAt   time.Time
	stable     stableReads // transactional topics: see settle

	// groups holds the last committed offsets read for each registered group (committed.go).
	groups map[string]*groupRead
	// singleGroup is set once a coordinator turned down an OffsetFetch for several groups
	// (a broker older than Kafka 3.0): from then on each group is fetched on its own.
	singleGroup bool
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

func (c *conn) unionTopics() []string { return c.users.union() }

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
	c.groups = nil
}

func (c *conn) poll(ctx context.Context, q Query, opts Options) (*Result, error) {
	if err := c.lock(ctx); err != nil {
		return nil, err
	}
	defer c.unlock()
	if err := c.connect(q, opts); err != nil {
		return nil, err
	}
	gr, err := c.committedOf(q, time.Now())
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.stale(q, time.Now()) {
		if err := c.read(opts); err != nil {
			c.maybeReset(err)
			return nil, err
		}
	}
	return c.result(q, gr)
}

func (c *conn) maybeReset(err error) {
	if _, ok := errors.AsType[sarama.KError](err); ok {
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
