package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// ConditionReconciling is True while the operator waits for something before the pipeline can
// be Ready (Kafka, a topic, a Secret, replicas). kstatus reads it as InProgress.
const ConditionReconciling = "Reconciling"

// Condition reasons.
const (
	ReasonReady = "Ready"
	// ReasonInsecureSkipVerify is Ready=True's reason while spec.kafka.tls.insecureSkipVerify
	// is set: the pipeline works, but broker certificates are not verified.
	ReasonInsecureSkipVerify = "InsecureSkipVerify"
	ReasonSuspended          = "Suspended"
	ReasonInvalidSpec        = "InvalidSpec"
	// ReasonSpecUndecodable: the stored object does not decode into the current types (for
	// example after a CRD change); only this pipeline stalls.
	ReasonSpecUndecodable = "SpecUndecodable"
	ReasonSecretNotFound  = "SecretNotFound"
	ReasonSecretInvalid   = "SecretInvalid"
	// ReasonSecretNotOptedIn: under --secret-opt-in, a referenced Secret lacks the
	// kpipe.io/pipeline-access=true label; nothing is read from it and nothing applied.
	ReasonSecretNotOptedIn = "SecretNotOptedIn"
	ReasonKafkaUnreachable = "KafkaUnreachable"
	ReasonTopicNotFound    = "TopicNotFound"
	ReasonReplicasNotReady = "ReplicasNotReady"
	ReasonApplyFailed      = "DeploymentApplyFailed"
	ReasonActive           = "Active"
	ReasonNoLag            = "NoLag"
	// ReasonStalledParts: partitions stood still with lag and no pod reports on them (no
	// telemetry record): the operator's estimate from committed offsets alone.
	ReasonStalledParts = "PartitionsStalled"
	// ReasonPartitionsStuck: partitions stood still with lag while their pod's workers are
	// not busy.
	ReasonPartitionsStuck = "PartitionsStuck"
	// ReasonPartitionsRetrying: partitions stood still on a message between retry attempts.
	ReasonPartitionsRetrying = "PartitionsRetrying"
	// ReasonDeadLetterUnwritable: partitions stood still on a message that can be neither
	// handled nor written to the dead-letter topic.
	ReasonDeadLetterUnwritable = "DeadLetterUnwritable"
	// ReasonPartitionsSlow is Stalled=False's reason while some partition works slowly (old
	// messages in flight, or busy workers): reported, not stalled, its lag still counts.
	ReasonPartitionsSlow = "PartitionsSlow"
	// ReasonResting is Idle=True's reason while replicas run but the group has no members:
	// the pods rest in their idle penalty.
	ReasonResting        = "Resting"
	ReasonProgressing    = "Progressing"
	ReasonScaledManually = "ScaledManually"
)

func setCondition(kp *kpipev1.KafkaPipeline, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&kp.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: kp.Generation,
	})
}

// markReady sets Ready and clears Reconciling.
func markReady(kp *kpipev1.KafkaPipeline, reason, msg string) {
	setCondition(kp, kpipev1.ConditionReady, metav1.ConditionTrue, reason, msg)
	meta.RemoveStatusCondition(&kp.Status.Conditions, ConditionReconciling)
}

// markWaiting sets Ready=False for something the operator waits for, with Reconciling=True.
func markWaiting(kp *kpipev1.KafkaPipeline, reason, msg string) {
	setCondition(kp, kpipev1.ConditionReady, metav1.ConditionFalse, reason, msg)
	setCondition(kp, ConditionReconciling, metav1.ConditionTrue, reason, msg)
}

// markInvalid sets Ready=False and Stalled=True (reason InvalidSpec or SpecUndecodable):
// nothing changes until the spec does.
func markInvalid(kp *kpipev1.KafkaPipeline, reason, msg string) {
	setCondition(kp, kpipev1.ConditionReady, metav1.ConditionFalse, reason, msg)
	setCondition(kp, kpipev1.ConditionStalled, metav1.ConditionTrue, reason, msg)
	meta.RemoveStatusCondition(&kp.Status.Conditions, ConditionReconciling)
}

func conditionReason(kp *kpipev1.KafkaPipeline, typ string) string {
	if c := meta.FindStatusCondition(kp.Status.Conditions, typ); c != nil {
		return c.Reason
	}
	return ""
}
