package scaling

import (
	"math"
	"testing"
	"time"

	"github.com/kpipe-io/kpipe/internal/telemetry"
)

func TestClassify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	hp := HealthParams{Now: now, StaleAfter: 30 * time.Second, SlowAfter: 60 * time.Second}
	lagged := PartitionLag{Lag: 100, Committed: 5}
	rec := func(f func(*telemetry.Record)) *telemetry.Record {
		r := &telemetry.Record{At: now.Add(-time.Second), Rate: 0, Busy: 0, State: telemetry.StateOK, Replica: "a"}
		if f != nil {
			f(r)
		}
		return r
	}
	stable := GroupSignals{Known: true, Members: 2}
	tests := []struct {
		name    string
		pl      PartitionLag
		stalled bool
		rec     *telemetry.Record
		g       GroupSignals
		want    Health
	}{
		{"no lag, no record", PartitionLag{}, false, nil, stable, HealthConsuming},
		{"lag moving, no record", lagged, false, nil, stable, HealthConsuming},
		{"offsets stood still, no record: today's estimate", lagged, true, nil, stable, HealthStuck},
		{"offsets stood still, group state unknown, no record", lagged, true, nil, GroupSignals{}, HealthStuck},
		{"no members: resting, never stuck", lagged, true, nil, GroupSignals{Known: true}, HealthResting},
		{"no members with a record saying retry: resting", lagged, true, rec(func(r *telemetry.Record) { r.State = telemetry.StateRetrying }), GroupSignals{Known: true}, HealthResting},
		{"mid-rebalance", lagged, true, nil, GroupSignals{Known: true, Rebalancing: true, Members: 1}, HealthRebalancing},
		{"stood still, retrying", lagged, true, rec(func(r *telemetry.Record) { r.State = telemetry.StateRetrying; r.Busy = 0.9 }), stable, HealthRetrying},
		{"stood still, dead letter unwritable", lagged, true, rec(func(r *telemetry.Record) { r.State = telemetry.StateDeadLetterBlocked }), stable, HealthDeadLetterUnwritable},
		{"stood still, workers busy: a long handler", lagged, true, rec(func(r *telemetry.Record) { r.Busy = 1; r.InFlight = 1; r.OldestInFlight = 5 * time.Minute }), stable, HealthSlow},
		{"stood still, other keys still finishing", lagged, true, rec(func(r *telemetry.Record) { r.Rate = 3; r.Busy = 0.01 }), stable, HealthSlow},
		{"stood still, idle workers", lagged, true, rec(func(r *telemetry.Record) { r.Busy = 0.01; r.InFlight = 1 }), stable, HealthStuck},
		{"stood still, record stale: as without", lagged, true, rec(func(r *telemetry.Record) { r.At = now.Add(-time.Minute); r.Busy = 1 }), stable, HealthStuck},
		{"retry snapshot while offsets move: not stuck", lagged, false, rec(func(r *telemetry.Record) { r.State = telemetry.StateRetrying }), stable, HealthConsuming},
		{"old work in flight while offsets move", lagged, false, rec(func(r *telemetry.Record) { r.OldestInFlight = 2 * time.Minute; r.Busy = 1 }), stable, HealthSlow},
		{"old work in flight, no lag", PartitionLag{}, false, rec(func(r *telemetry.Record) { r.OldestInFlight = 2 * time.Minute }), stable, HealthConsuming},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.pl, tc.stalled, tc.rec, tc.g, hp); got != tc.want {
				t.Fatalf("Classify = %s, want %s", got, tc.want)
			}
			if tc.want.Stuck() != (tc.want == HealthStuck || tc.want == HealthRetrying || tc.want == HealthDeadLetterUnwritable) {
				t.Fatalf("%s.Stuck() = %v", tc.want, tc.want.Stuck())
			}
		})
	}
}

func TestMeasuredCapacity(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	hp := HealthParams{Now: now, StaleAfter: 30 * time.Second, SlowAfter: time.Minute}
	r := func(replica string, rate, busy float64, age time.Duration) *telemetry.Record {
		return &telemetry.Record{At: now.Add(-age), Rate: rate, Busy: busy, Replica: replica}
	}
	tp := func(p int32) TopicPartition { return TopicPartition{Topic: "t", Partition: p} }
	tests := []struct {
		name string
		recs map[TopicPartition]*telemetry.Record
		want float64
	}{
		{"none", nil, 0},
		{"one replica, two partitions, half busy", map[TopicPartition]*telemetry.Record{
			tp(0): r("a", 30, 0.5, time.Second), tp(1): r("a", 20, 0.5, time.Second)}, 100},
		{"two replicas averaged", map[TopicPartition]*telemetry.Record{
			tp(0): r("a", 50, 0.5, time.Second), tp(1): r("b", 50, 0.25, time.Second)}, 150},
		{"an idle replica says nothing", map[TopicPartition]*telemetry.Record{
			tp(0): r("a", 50, 0.5, time.Second), tp(1): r("b", 0.1, 0.001, time.Second)}, 100},
		{"stale records ignored", map[TopicPartition]*telemetry.Record{
			tp(0): r("a", 50, 0.5, time.Hour)}, 0},
		{"a replica with a slow partition says nothing", map[TopicPartition]*telemetry.Record{
			tp(0): r("a", 50, 0.5, time.Second), tp(1): r("b", 10, 0.5, time.Second),
			tp(2): {At: now, Rate: 0, Busy: 0.5, Replica: "b", OldestInFlight: 2 * time.Minute}}, 100},
		// After a rebalance: "a" kept partition 0, where it now does all its work (60 msg/s);
		// partitions 1 and 2 still hold the records it wrote before giving them up, until
		// their new owner commits. Those rates are not "a"'s any more.
		{"a replica's records of partitions it gave up", map[TopicPartition]*telemetry.Record{
			tp(0): r("a", 60, 1, time.Second), tp(1): r("a", 20, 1, 2*time.Second), tp(2): r("a", 20, 1, 2*time.Second)}, 60},
		{"a replica's partitions of one commit summed", map[TopicPartition]*telemetry.Record{
			tp(0): r("a", 20, 0.5, time.Second), tp(1): r("a", 20, 0.5, time.Second), tp(2): r("b", 30, 0.5, 3*time.Second)}, 70},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := MeasuredCapacity(tc.recs, hp); math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("MeasuredCapacity = %v, want %v", got, tc.want)
			}
		})
	}
}

// A slow partition's lag counts up to one replica's worth: more replicas cannot give one
// partition more than one.
func TestSlowLagBeyondOneReplica(t *testing.T) {
	for _, tc := range []struct{ lag, perReplica, want int64 }{
		{0, 1000, 0}, {400, 1000, 0}, {1000, 1000, 0}, {37750, 1000, 36750}, {5, 0, 5},
	} {
		if got := SlowLagBeyondOneReplica(tc.lag, tc.perReplica); got != tc.want {
			t.Errorf("SlowLagBeyondOneReplica(%d, %d) = %d, want %d", tc.lag, tc.perReplica, got, tc.want)
		}
	}
}

// A partition retried for longer than SerialAfter has serial lag before the offsets call it
// stalled; a short retry (a flaky sink) and a healthy partition do not.
func TestSerial(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	hp := HealthParams{Now: now, StaleAfter: time.Minute, SlowAfter: time.Minute, SerialAfter: 10 * time.Second}
	rec := func(state telemetry.State, oldest time.Duration, age time.Duration) *telemetry.Record {
		return &telemetry.Record{At: now.Add(-age), State: state, InFlight: 1, OldestInFlight: oldest, Replica: "r"}
	}
	for _, tc := range []struct {
		name string
		h    Health
		rec  *telemetry.Record
		want bool
	}{
		{"slow", HealthSlow, nil, true},
		{"retrying for 30s", HealthConsuming, rec(telemetry.StateRetrying, 30*time.Second, 0), true},
		{"dead letter blocked for 30s", HealthConsuming, rec(telemetry.StateDeadLetterBlocked, 30*time.Second, 0), true},
		{"retrying for 2s: a flaky sink", HealthConsuming, rec(telemetry.StateRetrying, 2*time.Second, 0), false},
		{"retrying, the record stale", HealthConsuming, rec(telemetry.StateRetrying, 30*time.Second, 2*time.Minute), false},
		{"ok, old work in flight", HealthConsuming, rec(telemetry.StateOK, 30*time.Second, 0), false},
		{"no record", HealthConsuming, nil, false},
		{"stuck: its lag is left out already", HealthRetrying, rec(telemetry.StateRetrying, 30*time.Second, 0), false},
	} {
		if got := Serial(tc.h, tc.rec, hp); got != tc.want {
			t.Errorf("%s: Serial = %v, want %v", tc.name, got, tc.want)
		}
	}
}
