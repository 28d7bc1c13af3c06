package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Header is a Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Message is one Kafka record handed to a Handler. It is the handler's only while Handle
// runs: the runtime reuses the Message for a later message once Handle returned, and its
// slices are not the handler's, so a handler must not keep msg, nor any of its slices,
// after Handle returns (nor use them from goroutines that outlive the call). Clone makes a
// copy to keep.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time
	// Attempt is 1 on the first try and grows by one on every retry.
	Attempt int
}

// Clone returns a deep copy of m, which the caller may keep and change.
func (m *Message) Clone() *Message {
	c := *m
	c.Key, c.Value = bytes.Clone(m.Key), bytes.Clone(m.Value)
	if m.Headers != nil {
		c.Headers = make([]Header, len(m.Headers))
		for i, h := range m.Headers {
			c.Headers[i] = Header{Key: h.Key, Value: bytes.Clone(h.Value)}
		}
	}
	return &c
}

// Handler processes one message. Returning nil means done: the message's offset may be
// committed. Returning an error retries the message with exponential backoff up to
// spec.retry.maxAttempts, then writes it to spec.deadLetter.topic; an error wrapped with
// Permanent skips the retries. Handle is called from many goroutines at once (see
// spec.pool.ordering for which messages may run concurrently). ctx ends when the runtime
// gives up on the message: its partition was revoked and the drain timeout passed, or the
// shutdown grace period ended; the message is then consumed again later. msg is valid only
// until Handle returns (see Message).
type Handler interface {
	Handle(ctx context.Context, msg *Message) error
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, msg *Message) error

// Handle calls f(ctx, msg).
func (f HandlerFunc) Handle(ctx context.Context, msg *Message) error { return f(ctx, msg) }

// Permanent marks err as not worth retrying: the message goes to the dead-letter topic at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

var registry = struct {
	sync.RWMutex
	handlers map[string]Handler
}{handlers: map[string]Handler{}}

// Register makes a handler available under name, the spec.processor.handler.name of a
// KafkaPipeline. Call it from an init function or main before running the `run` command.
// Like database/sql.Register it panics when name is taken or h is nil: both are
// programming errors found at start-up.
func Register(name string, h Handler) {
	registry.Lock()
	defer registry.Unlock()
	if h == nil {
		panic("kpipe runtime: Register of a nil handler under " + name)
	}
	if _, dup := registry.handlers[name]; dup {
		panic("kpipe runtime: Register called twice for handler " + name)
	}
	registry.handlers[name] = h
}

// lookupHandler returns the handler registered under name.
func lookupHandler(name string) (Handler, error) {
	registry.RLock()
	defer registry.RUnlock()
	if h, ok := registry.handlers[name]; ok {
		return h, nil
	}
	names := make([]string, 0, len(registry.handlers))
	for n := range registry.handlers {
		names = append(names, n)
	}
	slices.Sort(names)
	return nil, fmt.Errorf("spec.processor.handler.name: no handler is registered under %q in this image (registered: %v)", name, names)
}
