package controllers

import (
	"math"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/lag"
	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// The reconciler derives the policy's rate inputs from what the lag reader returned: the
// produce rate from the log-end offsets, a per-replica sample from the committed offsets
// divided by the most replicas that ran, the last scale time from the status. Extra
// reconciles closer than half a poll interval and shared reads that were not refreshed
// measure nothing.
func TestReconcilerFeedsRatesToThePolicy(t *testing.T) {
	r := &KafkaPipelineReconciler{}
	st := &pipelineState{}
	start := time.Date(2026, 11, 21, 7, 0, 0, 0, time.UTC)
	kp := &kpipev1.KafkaPipeline{}
	kp.Status.LastScaleTime = &metav1.Time{Time: start.Add(-time.Minute)}
	spec := kpipev1.KafkaPipelineSpec{Topics: []string{"t"}, Group: "g"}
	spec.Default()
	res := func(at time.Duration, newest, committed int64) *lag.Result {
		var offs []scaling.Offsets
		for p := range int32(4) {
			offs = append(offs, scaling.Offsets{TopicPartition: scaling.TopicPartition{Topic: "t", Partition: p},
				Newest: newest, Oldest: 0, Committed: committed})
		}
		when := start.Add(at)
		return &lag.Result{Offsets: offs, NewestAt: when, CommittedAt: when}
	}
	poll := func(at time.Duration, replicas int32, rs *lag.Result) scaling.Input {
		cur := current{exists: true, replicas: replicas,
			dep: &appsv1.Deployment{Status: appsv1.DeploymentStatus{Replicas: replicas, ReadyReplicas: replicas}}}
		obs := &observation{partitions: 4}
		r.remember(&st.memory, &spec, rs, cur, obs, start.Add(at))
		return policyInput(kp, &spec, cur, obs, st, start.Add(at))
	}
	in := poll(0, 2, res(0, 1000, 1000))
	if in.ProduceRate != 0 || in.ReplicaRate != 0 {
		t.Fatalf("first poll: rates %v / %v, want unknown", in.ProduceRate, in.ReplicaRate)
	}
	if !in.LastScale.Equal(start.Add(-time.Minute)) || in.Params.PollInterval != 10*time.Second {
		t.Fatalf("last scale %v, poll interval %v", in.LastScale, in.Params.PollInterval)
	}
	// 10 s later: 4 partitions grew by 5000 each (2000 msg/s), committed by 2500 each on 2
	// replicas: 10 000 messages in 10 s, plus the runtime's 1 s commit interval of slack.
	perReplica := 10_000.0 / 11 / 2
	in = poll(10*time.Second, 2, res(10*time.Second, 6000, 3500))
	if in.ProduceRate != 2000 || math.Abs(in.ReplicaRate-perReplica) > 1e-9 {
		t.Fatalf("rates %v / %v, want 2000 / %v", in.ProduceRate, in.ReplicaRate, perReplica)
	}
	// An extra reconcile 2 s later on the same shared read, with 4 replicas now: not a poll,
	// but the 4 replicas count for the next interval.
	in = poll(12*time.Second, 4, res(10*time.Second, 6000, 3600))
	if in.ProduceRate != 2000 || math.Abs(in.ReplicaRate-perReplica) > 1e-9 {
		t.Fatalf("after an extra reconcile: rates %v / %v, want unchanged", in.ProduceRate, in.ReplicaRate)
	}
	// The next poll: committed +5000 each over 10 s (20 000 messages); 4 replicas ran, so
	// the sample is 20 000 / 11 / 4, not / 2; the estimate keeps the highest sample.
	in = poll(20*time.Second, 2, res(20*time.Second, 11_000, 8500))
	if in.ProduceRate != 2000 || math.Abs(in.ReplicaRate-perReplica) > 1e-9 {
		t.Fatalf("rates %v / %v, want 2000 / %v", in.ProduceRate, in.ReplicaRate, perReplica)
	}
}
