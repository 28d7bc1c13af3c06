// Package lag reads partition counts, newest, oldest and committed offsets from Kafka for the
// operator. One Reader serves every pipeline: pipelines on the same cluster (same bootstrap
// servers and credentials) share one sarama client and ClusterAdmin, and share the broker-wide
// offset reads, so the cost of a poll grows with brokers and consumer groups, not partitions.
package lag

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kpipe-io/kpipe/controllers/scaling"
	"github.com/kpipe-io/kpipe/internal/telemetry"
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
	// ReadCommitted is true when the group reads committed records only: records of aborted
	// transactions are then no lag.
	ReadCommitted bool
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
	// Records holds the telemetry record the last commit of each partition carried; a
	// partition without one (no commit, metadata not written by a kpipe pod, a record of an
	// unknown version) is absent. The map is shared: read it, never change it.
	Records map[scaling.TopicPartition]*telemetry.Record
	// Group is the consumer group's state and members, read with the committed offsets; nil
	// when the coordinator did not describe the group.
	Group *GroupState
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
		if c.users.remove(pipeline) {
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
		if oc.users.remove(q.Pipeline) {
			delete(r.conns, old)
			closing = oc
		}
	}
	c := r.conns[key]
	if c == nil {
		c = &conn{key: key, users: newUsers(), sem: make(chan struct{}, 1)}
		r.conns[key] = c
	}
	c.users.set(q.Pipeline, q.Topics, q.Group)
	r.users[q.Pipeline] = key
	r.mu.Unlock()
	if closing != nil {
		closing.close()
	}
	return c
}
