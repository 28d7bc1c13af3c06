package controllers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// event records one event on a pipeline: Normal for scale decisions, Warning for failures.
// Messages never carry Secret values: callers pass names, counts and error texts of the
// Kafka client and the API server only.
func (r *KafkaPipelineReconciler) event(kp *kpipev1.KafkaPipeline, warning bool, reason, action, format string, args ...any) {
	if r.Recorder == nil {
		return
	}
	typ := corev1.EventTypeNormal
	if warning {
		typ = corev1.EventTypeWarning
	}
	msg := fmt.Sprintf(format, args...)
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	r.Recorder.Eventf(kp, nil, typ, reason, action, "%s", msg)
}
