package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// TestStatusLagWritesDue walks the write rule with its defaults: 50% share, 1m between lag
// writes, any lag change after 10m.
func TestStatusLagWritesDue(t *testing.T) {
	stored := func() *kpipev1.KafkaPipelineStatus {
		return &kpipev1.KafkaPipelineStatus{
			DesiredReplicas: 2, Partitions: 4, Lag: 1000,
			Topics:     []kpipev1.TopicStatus{{Name: "a", Partitions: 4, Lag: 1000}},
			Conditions: []metav1.Condition{{Type: kpipev1.ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonReady, Message: "lag 1000"}},
		}
	}
	withLag := func(total, topic int64, msg string) *kpipev1.KafkaPipelineStatus {
		s := stored()
		s.Lag, s.Topics[0].Lag, s.Conditions[0].Message = total, topic, msg
		return s
	}
	now := time.Now()
	for _, tc := range []struct {
		name  string
		next  *kpipev1.KafkaPipelineStatus
		since time.Duration // since the last write; 0: none since the process started
		want  bool
	}{
		{"nothing changed", stored(), time.Hour, false},
		{"lag moved 20%, 2m after the last write", withLag(1200, 1200, "lag 1200"), 2 * time.Minute, false},
		{"lag moved 60%, 30s after the last write", withLag(1600, 1600, "lag 1600"), 30 * time.Second, false},
		{"lag moved 60%, 2m after the last write", withLag(1600, 1600, "lag 1600"), 2 * time.Minute, true},
		{"lag fell to a third, 2m after", withLag(300, 300, "lag 300"), 2 * time.Minute, true},
		{"lag moved 1%, 11m after the last write", withLag(1010, 1010, "lag 1010"), 11 * time.Minute, true},
		{"lag moved 1%, first write of this process", withLag(1010, 1010, "lag 1010"), 0, true},
		{"a condition's reason changed, 1s after", func() *kpipev1.KafkaPipelineStatus {
			s := stored()
			s.Conditions[0].Status, s.Conditions[0].Reason = metav1.ConditionFalse, ReasonReplicasNotReady
			return s
		}(), time.Second, true},
		{"desired replicas changed, 1s after", func() *kpipev1.KafkaPipelineStatus { s := stored(); s.DesiredReplicas = 3; return s }(), time.Second, true},
		{"partitions changed, 1s after", func() *kpipev1.KafkaPipelineStatus {
			s := stored()
			s.Partitions, s.Topics[0].Partitions = 8, 8
			return s
		}(), time.Second, true},
	} {
		w := &StatusLagWrites{}
		last := time.Time{}
		if tc.since > 0 {
			last = now.Add(-tc.since)
		}
		if got := w.due(stored(), tc.next, last, now); got != tc.want {
			t.Errorf("%s: due %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestStatusLagWritesCap: lag-only writes of all pipelines together stay under PerSecond;
// other changes are never capped.
func TestStatusLagWritesCap(t *testing.T) {
	w := &StatusLagWrites{PerSecond: 5}
	stored := &kpipev1.KafkaPipelineStatus{Lag: 10}
	lagOnly := &kpipev1.KafkaPipelineStatus{Lag: 100}
	replicas := &kpipev1.KafkaPipelineStatus{Lag: 10, DesiredReplicas: 4}
	now := time.Now()
	written := 0
	for range 100 {
		if w.due(stored, lagOnly, time.Time{}, now) {
			written++
		}
		if !w.due(stored, replicas, now, now) {
			t.Fatal("a change of replicas was held back")
		}
	}
	if written < 5 || written > 6 {
		t.Fatalf("%d of 100 lag-only writes at once; want the burst of 5", written)
	}
}
