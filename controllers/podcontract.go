package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

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

// Pod LISTs are rationed: they go to the API server uncached and share the operator's
// client rate limit (QPS 50 by default) with every pipeline's poll. Listing on every poll of
// every pipeline that is not ready took the whole budget at 1000 pipelines whose pods did not
// exist yet (BenchmarkOperatorScale: one poll cycle took 4x the interval).
const (
	// podRecheck is how long a pipeline's last look at its pods stands.
	podRecheck = 15 * time.Second
	// podListRate and podListBurst bound the pod LISTs of the whole operator; a poll that
	// finds the budget spent keeps its pipeline's last answer and looks at a later poll.
	podListRate  = 5
	podListBurst = 10
)

// podCheck is a pipeline's last look at its pods' termination messages.
type podCheck struct {
	at      time.Time
	refusal *waitError // nil when no pod refused the contract
}

// podRefusal reads, while the Deployment is not ready, the termination messages of the
// pipeline's pods, and returns a refused pod contract as what the pipeline waits for: a pod
// that would otherwise only crash-loop says why on the pipeline, in its Ready condition and
// a Warning event. The pods are listed from the API server, not cached: the operator has no
// use for pods otherwise, and does this only for a pipeline with pods that are not ready,
// at most every podRecheck, within the operator-wide podListRate.
func (r *KafkaPipelineReconciler) podRefusal(ctx context.Context, kp *kpipev1.KafkaPipeline, dep *appsv1.Deployment, desired int32, st *pipelineState, now time.Time) *waitError {
	if r.podReader == nil || dep == nil || desired == 0 || deploymentReady(dep, desired) {
		st.pods = podCheck{}
		return nil
	}
	if dep.Status.Replicas <= dep.Status.ReadyReplicas {
		return nil // no pod that is not ready (none created yet): nothing to read
	}
	if !st.pods.at.IsZero() && now.Sub(st.pods.at) < podRecheck || !r.podLists.Allow() {
		return st.pods.refusal
	}
	var pods corev1.PodList
	if err := r.podReader.List(ctx, &pods, client.InNamespace(kp.Namespace), client.MatchingLabels(render.SelectorLabels(kp.Name))); err != nil {
		ctrl.LoggerFrom(ctx).V(1).Info("list pods for their termination messages", "error", err.Error())
		return st.pods.refusal
	}
	st.pods = podCheck{at: now}
	for i := range pods.Items {
		if msg := contractRefusal(&pods.Items[i]); msg != "" {
			st.pods.refusal = &waitError{reason: ReasonPodContractUnsupported, err: fmt.Errorf("pod %s: %s", pods.Items[i].Name, msg)}
			break
		}
	}
	return st.pods.refusal
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
