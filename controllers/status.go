package controllers

import (
	"context"
	"fmt"
	"time"

	"maps"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// outcome is what one reconcile found and decided. The steps fill it in; finalizeStatus, run
// from the deferred status patch, is the one place that turns it into status and events.
type outcome struct {
	now time.Time
	log logr.Logger

	invalid     error                      // the spec was refused or did not decode: nothing else ran
	undecodable bool                       // invalid is about decoding (SpecUndecodable), not Validate
	spec        *kpipev1.KafkaPipelineSpec // defaults applied; nil when invalid
	wait        *waitError                 // what the pipeline waits for (Secret, Kafka, topic, the apply)

	current  current
	observed *observation // nil when Kafka was not read
	decision decision
	applied  applied // applied.dep is nil until the Deployment is applied for this generation
}

// waitError is something the operator waits for: Ready=False with a reason, a retry later.
type waitError struct {
	reason string
	err    error
}

func (w *waitError) Error() string { return w.err.Error() }
func (w *waitError) Unwrap() error { return w.err }

// finalizeStatus writes everything the reconcile has to say into the status: the conditions,
// observedGeneration (advanced once the Deployment for this generation is applied, or the spec
// is found invalid), lastScaleTime and the observed state. It records the Scale event, and a
// Warning event when the Ready reason changes, so a long outage does not flood the event stream.
func (r *KafkaPipelineReconciler) finalizeStatus(kp *kpipev1.KafkaPipeline, out *outcome) {
	if out.invalid != nil || out.applied.dep != nil {
		kp.Status.ObservedGeneration = kp.Generation
	}
	if out.invalid != nil {
		reason, action := ReasonInvalidSpec, "Validate"
		if out.undecodable {
			reason, action = ReasonSpecUndecodable, "Decode"
		}
		if conditionReason(kp, kpipev1.ConditionStalled) != reason {
			r.event(kp, true, reason, action, "%s", out.invalid.Error())
		}
		markInvalid(kp, reason, out.invalid.Error())
		return
	}
	if out.applied.dep != nil {
		if out.applied.scaled {
			r.recordScale(kp, out)
		}
		r.summarize(kp, out)
	}
	if w := out.wait; w != nil {
		if conditionReason(kp, kpipev1.ConditionReady) != w.reason {
			r.event(kp, true, w.reason, "Reconcile", "%s", w.Error())
		}
		markWaiting(kp, w.reason, w.Error())
		out.log.V(1).Info("waiting", "reason", w.reason, "error", w.Error())
	}
}

// recordScale sets lastScaleTime and records the Scale event.
func (r *KafkaPipelineReconciler) recordScale(kp *kpipev1.KafkaPipeline, out *outcome) {
	kp.Status.LastScaleTime = &metav1.Time{Time: out.now}
	reason, why := "Scaled", ""
	switch {
	case out.spec.Suspend:
		reason, why = ReasonSuspended, "spec.suspend is true"
	case out.spec.Scaling.Mode == kpipev1.ScalingManual:
		reason, why = ReasonScaledManually, "scaling.mode is Manual: spec.replicas"
	case out.decision.policy != nil:
		reason, why = out.decision.policy.Reason, out.decision.policy.Message
	case out.observed == nil:
		why = "initial replicas (minReplicas) while Kafka cannot be read"
	}
	from, to := out.current.replicas, out.decision.desired
	out.log.Info("scaled", "from", from, "to", to, "reason", reason)
	r.event(kp, false, reason, "Scale", "scaled from %d to %d replicas: %s", from, to, why)
}

// summarize writes the observed state and the conditions into the status. Ready is left to
// the wait, when there is one.
func (r *KafkaPipelineReconciler) summarize(kp *kpipev1.KafkaPipeline, out *outcome) {
	st, dep, desired := &kp.Status, out.applied.dep, out.decision.desired
	st.DesiredReplicas = desired
	st.Selector = metav1.FormatLabelSelector(dep.Spec.Selector)
	st.Replicas = dep.Status.Replicas
	st.ReadyReplicas = dep.Status.ReadyReplicas
	if obs := out.observed; obs != nil {
		st.Partitions, st.Lag, st.LagSeconds, st.Topics = obs.partitions, obs.lag, obs.lagSeconds, obs.topics
	}
	summarizeIdle(kp, out)
	r.summarizeStalled(kp, out)
	switch {
	case out.wait != nil:
		// Ready says what the pipeline waits for (finalizeStatus).
	case out.spec.Suspend:
		markReady(kp, ReasonSuspended, "suspended: scaled to zero, Kafka is not polled")
	case !deploymentReady(dep, desired):
		markWaiting(kp, ReasonReplicasNotReady, fmt.Sprintf("%d of %d replicas ready (Deployment applied, Kafka reachable, topics found)",
			dep.Status.ReadyReplicas, desired))
	default:
		r.markReadyOrInsecure(kp, fmt.Sprintf("Deployment applied with %d replicas, all ready; Kafka reachable; %d topics with %d partitions; lag %d",
			desired, len(out.spec.Topics), st.Partitions, st.Lag), out.spec)
	}
}

// markReadyOrInsecure sets Ready=True, reason Ready; or, while spec.kafka.tls.insecureSkipVerify
// is set, reason InsecureSkipVerify with a Warning event when the reason changes to it. Ready
// stays True so kstatus reads the working pipeline as Current; the reason shows the risk.
func (r *KafkaPipelineReconciler) markReadyOrInsecure(kp *kpipev1.KafkaPipeline, msg string, spec *kpipev1.KafkaPipelineSpec) {
	if t := spec.Kafka.TLS; t == nil || !t.InsecureSkipVerify {
		markReady(kp, ReasonReady, msg)
		return
	}
	const warning = "broker certificates are not verified (spec.kafka.tls.insecureSkipVerify): anyone on the path can read and change the traffic"
	if conditionReason(kp, kpipev1.ConditionReady) != ReasonInsecureSkipVerify {
		r.event(kp, true, ReasonInsecureSkipVerify, "Reconcile", "%s", warning)
	}
	markReady(kp, ReasonInsecureSkipVerify, warning+"; "+msg)
}

func summarizeIdle(kp *kpipev1.KafkaPipeline, out *outcome) {
	if out.spec.Suspend {
		setCondition(kp, kpipev1.ConditionIdle, metav1.ConditionTrue, ReasonSuspended, "suspended")
		return
	}
	obs := out.observed
	if obs == nil {
		return // nothing new observed: keep the last word
	}
	idle, idleSince, reason, msg := idleness(kp, out)
	if (!idle || reason == ReasonNoLag) && resting(out) {
		// More telling than "no lag": the replicas left the group for their idle penalty.
		idle, reason, msg = true, ReasonResting, restingMessage(out)
	}
	if idleSince != nil {
		// The API stores whole seconds: a finer time would differ from the stored one on every
		// poll and cost a status write each time.
		kp.Status.IdleSince = &metav1.Time{Time: idleSince.Truncate(time.Second)}
	} else {
		kp.Status.IdleSince = nil
	}
	if idle {
		setCondition(kp, kpipev1.ConditionIdle, metav1.ConditionTrue, reason, msg)
		return
	}
	msg = fmt.Sprintf("lag %d", obs.lag)
	if obs.progress {
		msg += ", commits progressing"
	}
	setCondition(kp, kpipev1.ConditionIdle, metav1.ConditionFalse, ReasonActive, msg)
}

// idleness is whether the pipeline is idle, since when, and the Idle condition's reason and
// message when it is: the policy's word in Auto mode; in Manual mode, no lag and no commit
// progress (reported, nothing scales).
func idleness(kp *kpipev1.KafkaPipeline, out *outcome) (bool, *time.Time, string, string) {
	var idle bool
	var idleSince *time.Time
	reason, msg := ReasonActive, ""
	if d := out.decision.policy; d != nil {
		idle, idleSince = d.Idle, d.IdleSince
		switch d.Reason {
		case scaling.ReasonIdleToZero, scaling.ReasonIdlePenalty, scaling.ReasonBelowActivation:
			reason, msg = d.Reason, d.Message
		}
	} else if idle = out.observed.lag == 0 && !out.observed.progress; idle {
		t := out.now
		if kp.Status.IdleSince != nil {
			t = kp.Status.IdleSince.Time
		}
		idleSince = &t
	}
	if idle && msg == "" {
		reason = ReasonNoLag
		msg = fmt.Sprintf("no lag and no commit progress since %s", idleSince.UTC().Format(time.RFC3339))
		if out.decision.policy != nil && *out.spec.Scaling.MinReplicas == 0 {
			msg += fmt.Sprintf("; scales to zero after the idle window %s", out.spec.Idle.Window.Duration)
		}
	}
	return idle, idleSince, reason, msg
}

// invalidSpec is whether the Stalled condition says the spec was refused or did not decode.
func invalidSpec(kp *kpipev1.KafkaPipeline) bool {
	r := conditionReason(kp, kpipev1.ConditionStalled)
	return r == ReasonInvalidSpec || r == ReasonSpecUndecodable
}

// deploymentReady is true when the Deployment controller has seen the latest spec and the
// wanted replicas are updated and ready.
func deploymentReady(dep *appsv1.Deployment, desired int32) bool {
	if desired == 0 {
		return true
	}
	s := dep.Status
	return s.ObservedGeneration >= dep.Generation && s.UpdatedReplicas >= desired && s.ReadyReplicas >= desired
}

// patchStatus writes the status once per reconcile, when it changed by more than lag, or
// when the lag change is due (StatusLagWrites). It patches the stored object as unstructured,
// so that a pipeline whose spec does not decode gets its status too (a typed patch would fail
// decoding the answer).
func (r *KafkaPipelineReconciler) patchStatus(ctx context.Context, stored *unstructured.Unstructured, orig, kp *kpipev1.KafkaPipeline, now time.Time) error {
	st := r.peekState(client.ObjectKeyFromObject(kp)) // nil when the spec did not decode
	var lastWrite time.Time
	if st != nil {
		r.mu.Lock()
		lastWrite = st.statusWrittenAt
		r.mu.Unlock()
	}
	if !r.StatusLag.due(&orig.Status, &kp.Status, lastWrite, now) {
		return nil
	}
	status, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&kp.Status)
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	patched := &unstructured.Unstructured{Object: maps.Clone(stored.Object)}
	patched.Object["status"] = status
	if err := client.IgnoreNotFound(r.Status().Patch(ctx, patched, client.MergeFrom(stored))); err != nil {
		return fmt.Errorf("patch status: %w", err)
	}
	statusWrites.WithLabelValues("written").Inc()
	if st != nil {
		r.mu.Lock()
		st.statusWrittenAt = now
		r.mu.Unlock()
	}
	return nil
}
