package controllers

import (
	"math"
	"testing"
	"time"

	"github.com/kpipe-io/kpipe/controllers/lag"
	"github.com/kpipe-io/kpipe/controllers/scaling"
	"github.com/kpipe-io/kpipe/internal/telemetry"
)

// TestLagSeconds follows one partition over polls: the lag in seconds comes from the record's
// last committed timestamp, else from the lag over the produce rate, capped by the time since
// the partition was last seen caught up; 0 without lag.
func TestLagSeconds(t *testing.T) {
	tp := scaling.TopicPartition{Topic: "t", Partition: 0}
	t0 := time.Unix(1_800_000_000, 0)
	clock := lagClock{}
	poll := func(at time.Duration, newest, lagMsgs int64, rec *telemetry.Record) float64 {
		now := t0.Add(at)
		res := &lag.Result{NewestAt: now, Offsets: []scaling.Offsets{{TopicPartition: tp, Newest: newest, Committed: newest - lagMsgs}}}
		if rec != nil {
			res.Records = map[scaling.TopicPartition]*telemetry.Record{tp: rec}
		}
		hp := scaling.HealthParams{Now: now, StaleAfter: 10 * time.Second}
		return clock.observe(res, []scaling.PartitionLag{{TopicPartition: tp, Lag: lagMsgs}}, hp)[tp]
	}
	near := func(step string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-6 {
			t.Fatalf("%s: lag seconds %v, want %v", step, got, want)
		}
	}
	// The operator starts with lag it never saw caught up, no rate and no record: a lower
	// bound, the time since it first saw the lag.
	near("first poll", poll(0, 100, 100, nil), 0)
	near("no rate yet, never caught up", poll(2*time.Second, 100, 100, nil), 2)
	// 10 msg/s produced (smoothed in from 0: 5 msg/s), 100 waiting: 20s.
	near("lag over the produce rate", poll(4*time.Second, 120, 100, nil), 20)
	// A record's timestamp wins.
	rec := &telemetry.Record{At: t0.Add(6 * time.Second), LastTimestamp: t0.Add(-30 * time.Second)}
	near("record", poll(6*time.Second, 140, 100, rec), 36)
	near("caught up", poll(8*time.Second, 160, 0, nil), 0)
	// Lag again: the waiting message came after the last caught-up poll, 2s ago, whatever an
	// old timestamp (a quiet partition's last message, an hour ago) says.
	old := &telemetry.Record{At: t0.Add(10 * time.Second), LastTimestamp: t0.Add(-time.Hour)}
	near("capped by the caught-up time", poll(10*time.Second, 165, 5, old), 2)
	// A stale record is none: the produce rate speaks.
	stale := &telemetry.Record{At: t0.Add(-time.Minute), LastTimestamp: t0.Add(-time.Hour)}
	got := poll(11*time.Second, 170, 10, stale)
	if got <= 0 || got > 3 {
		t.Fatalf("stale record: lag seconds %v, want the rate's estimate within the 3s since caught up", got)
	}
	// A producer's clock ahead of the operator's gives no negative age.
	future := &telemetry.Record{At: t0.Add(12 * time.Second), LastTimestamp: t0.Add(time.Minute)}
	near("timestamp in the future", poll(12*time.Second, 175, 15, future), 0)
}

func TestTopicLagSecondsIsTheLargest(t *testing.T) {
	got := topicLagSeconds(map[scaling.TopicPartition]float64{
		{Topic: "a", Partition: 0}: 3, {Topic: "a", Partition: 1}: 9, {Topic: "b", Partition: 0}: 1,
	})
	if got["a"] != 9 || got["b"] != 1 {
		t.Fatalf("per topic %v, want a 9 and b 1", got)
	}
}
