package controllers

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/render"
)

// ReasonPodContractUnsupported is Ready's reason while the pipeline's pods run an image whose kpipe runtime
// implements an older pod contract than the spec requires (KPIPE_POD_CONTRACT), so they
// refuse to start. The message is the pod's own: both versions and what to rebuild. The pods
// of the previous template keep running while the rollout is stuck.
const ReasonPodContractUnsupported = "PodContractUnsupported"

// +kubebuilder:rbac:groups="",resources=pods,verbs=list

// podRefusal reads, while the Deployment is not ready, the termination messages of the
// pipeline's pods, and returns a refused pod contract as what the pipeline waits for: a pod
// that would otherwise only crash-loop says why on the pipeline, in its Ready condition and
// a Warning event. The pods are listed from the API server, not cached: the operator has no
// use for pods otherwise, and does this only for a pipeline that is not ready.
func (r *KafkaPipelineReconciler) podRefusal(ctx context.Context, kp *kpipev1.KafkaPipeline, dep *appsv1.Deployment, desired int32) *waitError {
	if r.podReader == nil || dep == nil || desired == 0 || deploymentReady(dep, desired) {
		return nil
	}
	var pods corev1.PodList
	if err := r.podReader.List(ctx, &pods, client.InNamespace(kp.Namespace), client.MatchingLabels(render.SelectorLabels(kp.Name))); err != nil {
		ctrl.LoggerFrom(ctx).V(1).Info("list pods for their termination messages", "error", err.Error())
		return nil
	}
	for i := range pods.Items {
		if msg := contractRefusal(&pods.Items[i]); msg != "" {
			return &waitError{reason: ReasonPodContractUnsupported, err: fmt.Errorf("pod %s: %s", pods.Items[i].Name, msg)}
		}
	}
	return nil
}

// contractRefusal is the pipeline container's refusal of the pod contract, from its current
// or last termination, or "". With the fallback to logs the message is the log's tail, so
// the refusal is found anywhere in it, and cut at its line's end.
func contractRefusal(pod *corev1.Pod) string {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name != render.ContainerName {
			continue
		}
		for _, t := range []*corev1.ContainerStateTerminated{cs.State.Terminated, cs.LastTerminationState.Terminated} {
			if t == nil {
				continue
			}
			if i := strings.Index(t.Message, kpipev1.ContractRefusalPrefix); i >= 0 {
				line, _, _ := strings.Cut(t.Message[i:], "\n")
				return strings.TrimSpace(line)
			}
		}
	}
	return ""
}
