// Package telemetry is the record a kpipe pod writes into the offset-commit metadata of every
// partition it owns, and the operator reads back from the OffsetFetch it already sends. It is
// part of the pod contract (docs/runtime.md, "Telemetry in the commit metadata"): a pod and
// an operator of different versions must understand each other, so the record is versioned,
// and within a version a reader ignores keys it does not know.
//
// The text form is `kp1;at=<unix ms>;r=<msg/s>;b=<busy 0..1>;n=<in flight>;o=<oldest ms>;
// t=<unix ms>;s=<state>;p=<replica>`: short enough for Kafka's default
// offset.metadata.max.bytes (4096) many times over, and readable in a debugger or a dump of
// __consumer_offsets. Encode never returns more than MaxLen bytes.
package telemetry

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Version is the record version Encode writes. A reader that meets another version falls back
// to what it can infer without the record.
const Version = 1

// MaxLen bounds an encoded record, whatever the replica name.
const MaxLen = 256

// prefix starts every record of this version; records of other versions start with "kp<N>;".
const prefix = "kp1"

// State says whether a partition's work is moving through the worker pool as usual.
type State string

const (
	// StateOK means messages are being handled, or there is nothing to handle.
	StateOK State = "ok"
	// StateRetrying means the oldest message in flight is between attempts of retry.maxAttempts.
	StateRetrying State = "retry"
	// StateDeadLetterBlocked means a message that exhausted its attempts cannot be written to the
	// dead-letter topic, so the partition's committed offset cannot pass it.
	StateDeadLetterBlocked State = "dlq"
)

// Record is what one replica knows about one partition it owns, at one commit.
type Record struct {
	// At is when the record was written: a reader judges its freshness from it.
	At time.Time
	// Rate is the messages per second the replica finished on this partition, over the last
	// commit interval or so.
	Rate float64
	// Busy is the share of the replica's worker time spent in handlers over the same window,
	// from 0 to 1. Rate/Busy (summed over a replica's partitions) is its capacity.
	Busy float64
	// InFlight is the partition's messages handed to workers and not yet finished.
	InFlight int
	// OldestInFlight is the age of the oldest of those, 0 when none.
	OldestInFlight time.Duration
	// LastTimestamp is the record timestamp of the last message covered by the committed
	// offset; zero when none is known yet.
	LastTimestamp time.Time
	// State is StateOK, StateRetrying or StateDeadLetterBlocked.
	State State
	// Replica names the pod that wrote the record (its end, if the name is very long).
	Replica string
}

// ErrNotTelemetry is returned for metadata that is not a kpipe record at all (empty, or
// written by another client).
var ErrNotTelemetry = errors.New("commit metadata is not a kpipe telemetry record")

// UnknownVersionError is returned for a kpipe record of a version this reader does not know.
type UnknownVersionError struct{ Got string }

func (e *UnknownVersionError) Error() string {
	return fmt.Sprintf("telemetry record version %q is not %d", e.Got, Version)
}

// Encode renders r, truncating the replica name from the front so the result fits MaxLen.
func Encode(r Record) string {
	var b strings.Builder
	b.WriteString(prefix)
	field(&b, "at", strconv.FormatInt(r.At.UnixMilli(), 10))
	field(&b, "r", strconv.FormatFloat(nonNegative(r.Rate), 'f', 2, 64))
	field(&b, "b", strconv.FormatFloat(clamp01(r.Busy), 'f', 3, 64))
	field(&b, "n", strconv.Itoa(max(r.InFlight, 0)))
	field(&b, "o", strconv.FormatInt(max(r.OldestInFlight.Milliseconds(), 0), 10))
	if !r.LastTimestamp.IsZero() {
		field(&b, "t", strconv.FormatInt(r.LastTimestamp.UnixMilli(), 10))
	}
	state := r.State
	if state == "" {
		state = StateOK
	}
	field(&b, "s", string(state))
	// The replica goes last: it is the only field of unbounded length. Its end (a pod name's
	// random suffix) is what tells replicas apart, so a long name loses its front.
	room := MaxLen - b.Len() - len(";p=")
	replica := strings.NewReplacer(";", "_", "=", "_").Replace(r.Replica)
	if len(replica) > room {
		replica = replica[len(replica)-room:]
	}
	field(&b, "p", replica)
	return b.String()
}

func field(b *strings.Builder, key, value string) {
	b.WriteByte(';')
	b.WriteString(key)
	b.WriteByte('=')
	b.WriteString(value)
}

// Decode parses a record. Metadata that is not a kpipe record gives ErrNotTelemetry, a kpipe
// record of another version an *UnknownVersionError; in both cases the reader falls back.
func Decode(s string) (Record, error) {
	head, rest, _ := strings.Cut(s, ";")
	if !strings.HasPrefix(head, "kp") || len(head) < 3 {
		return Record{}, ErrNotTelemetry
	}
	if head != prefix {
		return Record{}, &UnknownVersionError{Got: head[2:]}
	}
	r := Record{State: StateOK}
	for kv := range strings.SplitSeq(rest, ";") {
		key, value, ok := strings.Cut(kv, "=")
		if !ok {
			return Record{}, fmt.Errorf("telemetry record: field %q has no value", kv)
		}
		if err := r.set(key, value); err != nil {
			return Record{}, fmt.Errorf("telemetry record: field %s=%q: %w", key, value, err)
		}
	}
	if r.At.IsZero() {
		return Record{}, errors.New("telemetry record: no time written (at=)")
	}
	return r, nil
}

// set applies one key=value; keys a newer writer of this version added are ignored.
func (r *Record) set(key, value string) error {
	var err error
	switch key {
	case "at":
		r.At, err = unixMilli(value)
	case "r":
		r.Rate, err = strconv.ParseFloat(value, 64)
	case "b":
		r.Busy, err = strconv.ParseFloat(value, 64)
	case "n":
		r.InFlight, err = strconv.Atoi(value)
	case "o":
		var ms int64
		ms, err = strconv.ParseInt(value, 10, 64)
		r.OldestInFlight = time.Duration(ms) * time.Millisecond
	case "t":
		r.LastTimestamp, err = unixMilli(value)
	case "s":
		r.State = State(value)
	case "p":
		r.Replica = value
	}
	return err
}

func unixMilli(s string) (time.Time, error) {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(ms), nil
}

func nonNegative(f float64) float64 { return max(f, 0) }

func clamp01(f float64) float64 { return min(max(f, 0), 1) }
