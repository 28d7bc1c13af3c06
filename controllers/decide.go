package controllers

import (
	"time"

	"k8s.io/apimachinery/pkg/types"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// decision is the replica count to apply and, in Auto mode with Kafka read, the policy's
// decision behind it.
type decision struct {
	desired int32
	policy  *scaling.Decision
}

// decide returns the replicas to apply: zero when suspended, spec.replicas in Manual mode,
// the scaling policy's answer in Auto mode, and the current count when Kafka could not be
// read (minReplicas for a new Deployment). It records what it decided in the scaling memory.
func decide(key types.NamespacedName, kp *kpipev1.KafkaPipeline, spec *kpipev1.KafkaPipelineSpec, cur current,
	obs *observation, st *pipelineState, now time.Time) decision {
	var d decision
	switch {
	case spec.Suspend:
		st.memory.Override()
	case spec.Scaling.Mode == kpipev1.ScalingManual:
		d.desired = spec.ManualReplicas()
		st.memory.Override()
	case obs == nil && cur.exists:
		d.desired = cur.replicas // Kafka unreadable: leave replicas alone
	case obs == nil:
		d.desired = *spec.Scaling.MinReplicas
	default:
		p := scaling.Decide(policyInput(kp, spec, cur, obs, st, now))
		st.memory.Record(now, p)
		d.desired, d.policy = p.Replicas, &p
	}
	desiredReplicas.WithLabelValues(key.Namespace, key.Name).Set(float64(d.desired))
	return d
}

// policyInput is what the policy decides on: the spec, the Deployment, the poll and the
// status, and what the scaling memory remembers (see scaling.Memory.Input). A process that has
// not applied the Deployment yet takes the idle clocks from the status. Nothing is changed.
func policyInput(kp *kpipev1.KafkaPipeline, spec *kpipev1.KafkaPipelineSpec, cur current, obs *observation,
	st *pipelineState, now time.Time) scaling.Input {
	s := spec.Scaling
	in := scaling.Input{
		Params: scaling.Params{
			MinReplicas: *s.MinReplicas, MaxReplicas: *s.MaxReplicas,
			LagPerReplica: *s.LagPerReplica, ActivationLag: *s.ActivationLag,
			IdleWindow: spec.Idle.Window.Duration, IdlePenalty: spec.Idle.Penalty.Duration,
			ScaleDownStabilization: s.ScaleDownStabilization.Duration,
			PollInterval:           s.PollInterval.Duration,
			CommitInterval:         runtimeCommitInterval,
		},
		Now:           now,
		Partitions:    obs.partitions,
		Assignment:    assignment(spec, obs),
		Lag:           obs.lag - obs.stalledLag - obs.slowLag,
		StalledLag:    obs.stalledLag,
		SlowLag:       obs.slowLag,
		NeedsConsumer: obs.needsConsumer,
		Current:       cur.replicas,
	}
	if s.LagTimeTarget != nil {
		in.Params.LagTimeTarget = s.LagTimeTarget.Duration
	}
	if kp.Status.LastScaleTime != nil {
		in.LastScale = kp.Status.LastScaleTime.Time
	}
	var restored *scaling.Clocks
	if !st.cache.initialized {
		restored = clocksFromStatus(kp, cur.replicas)
	}
	return st.memory.Input(in, restored)
}

// clocksFromStatus are the idle clocks a fresh process (a restart, a new leader) resumes from:
// status.idleSince, and, at zero replicas, the last scale time when the policy scaled to zero
// for idleness (the idle penalty counts from it).
func clocksFromStatus(kp *kpipev1.KafkaPipeline, replicas int32) *scaling.Clocks {
	c := &scaling.Clocks{}
	if kp.Status.IdleSince != nil {
		t := kp.Status.IdleSince.Time
		c.IdleSince = &t
	}
	if replicas == 0 && kp.Status.LastScaleTime != nil {
		switch conditionReason(kp, kpipev1.ConditionIdle) {
		case scaling.ReasonIdleToZero, scaling.ReasonIdlePenalty:
			t := kp.Status.LastScaleTime.Time
			c.ZeroSince = &t
		}
	}
	return c
}

// assignment is how the group's assignor spreads the observed partitions over the replicas.
func assignment(spec *kpipev1.KafkaPipelineSpec, obs *observation) scaling.Assignment {
	a := scaling.Assignment{PerTopic: spec.Kafka.RebalanceStrategy.PerTopic()}
	for _, t := range obs.topics {
		a.TopicPartitions = append(a.TopicPartitions, t.Partitions)
	}
	return a
}
