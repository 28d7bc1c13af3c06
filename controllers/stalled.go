package controllers

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// unreported is the stuck partitions no pod reports on (no fresh telemetry record): the
// operator's estimate from committed offsets alone.
const unreported scaling.Health = "Unreported"

// stuckReasons are the Stalled=True reasons by partition health, the most telling first: the
// condition carries the first that applies, its message names every kind.
var stuckReasons = []struct {
	health scaling.Health
	reason string
	what   string
}{
	{scaling.HealthDeadLetterUnwritable, ReasonDeadLetterUnwritable, "blocked on the dead-letter topic"},
	{scaling.HealthRetrying, ReasonPartitionsRetrying, "retrying a message"},
	{scaling.HealthStuck, ReasonPartitionsStuck, "with idle workers"},
	{unreported, ReasonStalledParts, "without a report from a pod"},
}

// summarizeStalled sets the Stalled condition: True only for stuck partitions (see
// scaling.Classify), with a reason saying why; False with reason PartitionsSlow while some
// partition works slowly, Progressing otherwise. Without a poll it keeps the last word.
func (r *KafkaPipelineReconciler) summarizeStalled(kp *kpipev1.KafkaPipeline, out *outcome) {
	obs := out.observed
	if out.spec.Suspend || obs == nil {
		if out.spec.Suspend || invalidSpec(kp) {
			setCondition(kp, kpipev1.ConditionStalled, metav1.ConditionFalse, ReasonProgressing, "no partition is stalled")
		}
		return
	}
	sig := obs.signals
	if len(sig.stuck) == 0 {
		if len(sig.slow) == 0 {
			setCondition(kp, kpipev1.ConditionStalled, metav1.ConditionFalse, ReasonProgressing, "no partition is stalled")
			return
		}
		msg := fmt.Sprintf("%d partition(s) work slowly, not stuck (old messages in flight or busy workers; their lag keeps counting for scaling): %s",
			len(sig.slow), partitionNames(sig.slow))
		if conditionReason(kp, kpipev1.ConditionStalled) != ReasonPartitionsSlow {
			r.event(kp, false, ReasonPartitionsSlow, "Observe", "%s", msg)
		}
		setCondition(kp, kpipev1.ConditionStalled, metav1.ConditionFalse, ReasonPartitionsSlow, msg)
		return
	}
	reason, msg := stuckMessage(sig, r.stallPolls())
	if conditionReason(kp, kpipev1.ConditionStalled) != reason {
		r.event(kp, true, reason, "Observe", "%s", msg)
	}
	setCondition(kp, kpipev1.ConditionStalled, metav1.ConditionTrue, reason, msg)
}

// stuckMessage is the Stalled=True reason and message for the stuck partitions.
func stuckMessage(sig signals, threshold int) (string, string) {
	byHealth := map[scaling.Health][]scaling.TopicPartition{}
	for _, tp := range sig.stuck {
		h := sig.health[tp]
		if h == scaling.HealthStuck && !sig.reported[tp] {
			h = unreported
		}
		byHealth[h] = append(byHealth[h], tp)
	}
	reason := ""
	var parts []string
	for _, k := range stuckReasons {
		if tps := byHealth[k.health]; len(tps) > 0 {
			if reason == "" {
				reason = k.reason
			}
			parts = append(parts, fmt.Sprintf("%d %s: %s", len(tps), k.what, partitionNames(tps)))
		}
	}
	return reason, fmt.Sprintf("%d partition(s) have lag and a committed offset that has not moved for %d polls (their lag does not add replicas); %s",
		len(sig.stuck), threshold, strings.Join(parts, "; "))
}

// partitionNames lists up to five partitions, then how many more.
func partitionNames(tps []scaling.TopicPartition) string {
	names := make([]string, 0, 6)
	for i, tp := range tps {
		if i == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(tps)-5))
			break
		}
		names = append(names, tp.String())
	}
	return strings.Join(names, ", ")
}

// resting is whether the pipeline's pods rest in their idle penalty: replicas are ready but
// the group has no members. It is Idle (reason Resting), never Stalled. With minReplicas 0
// in Auto mode the policy scales such a pipeline to zero and says so itself.
func resting(out *outcome) bool {
	obs, dep := out.observed, out.applied.dep
	if obs == nil || !obs.signals.resting || dep == nil || dep.Status.ReadyReplicas == 0 {
		return false
	}
	return out.spec.Scaling.Mode == kpipev1.ScalingManual || *out.spec.Scaling.MinReplicas >= 1
}

func restingMessage(out *outcome) string {
	return fmt.Sprintf("%d replica(s) ready and the consumer group has no members: the pods rest in their idle penalty (%s) and join again after it; lag %d",
		out.applied.dep.Status.ReadyReplicas, out.spec.Idle.Penalty.Duration, out.observed.lag)
}
