package controllers

import (
	"context"
	"testing"
	"time"

	"golang.org/x/time/rate"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/render"
)

// countingReader counts the LISTs that would reach the API server.
type countingReader struct {
	client.Reader
	lists int
}

func (c *countingReader) List(ctx context.Context, l client.ObjectList, opts ...client.ListOption) error {
	c.lists++
	return c.Reader.List(ctx, l, opts...)
}

// refusingPod is a crash-looping pod of the pipeline whose last termination refused the contract.
func refusingPod(kp *kpipev1.KafkaPipeline) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: kp.Namespace, Name: kp.Name + "-abc", Labels: render.Labels(kp.Name)}}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: render.ContainerName, LastTerminationState: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: kpipev1.ContractRefusalPrefix + " requires pod contract 9"},
	}}}
	return pod
}

// Pod LISTs share the operator's client rate limit with every poll, so a pipeline that is not
// ready looks at its pods only when some exist and are not ready, at most every podRecheck,
// and within the operator-wide budget; in between it keeps its last answer.
func TestPodRefusalIsRationed(t *testing.T) {
	kp := &kpipev1.KafkaPipeline{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "orders"}}
	reader := &countingReader{Reader: fake.NewClientBuilder().WithObjects(refusingPod(kp)).Build()}
	r := &KafkaPipelineReconciler{podReader: reader, podLists: rate.NewLimiter(0, 2)}
	st := &pipelineState{}
	ctx, t0 := context.Background(), time.Now()
	dep := &appsv1.Deployment{}

	if w := r.podRefusal(ctx, kp, dep, 2, st, t0); w != nil || reader.lists != 0 {
		t.Fatalf("no pod created yet: got %v after %d lists, want nothing and no list", w, reader.lists)
	}
	dep.Status = appsv1.DeploymentStatus{Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 1}
	if w := r.podRefusal(ctx, kp, dep, 2, st, t0); w == nil || w.reason != ReasonPodContractUnsupported || reader.lists != 1 {
		t.Fatalf("unready pods: got %v after %d lists, want the refusal after one list", w, reader.lists)
	}
	if w := r.podRefusal(ctx, kp, dep, 2, st, t0.Add(podRecheck-time.Second)); w == nil || reader.lists != 1 {
		t.Fatalf("within podRecheck: got %v after %d lists, want the last answer and no list", w, reader.lists)
	}
	if w := r.podRefusal(ctx, kp, dep, 2, st, t0.Add(podRecheck)); w == nil || reader.lists != 2 {
		t.Fatalf("after podRecheck: got %v after %d lists, want a second list", w, reader.lists)
	}
	if w := r.podRefusal(ctx, kp, dep, 2, st, t0.Add(3*podRecheck)); w == nil || reader.lists != 2 {
		t.Fatalf("budget spent: got %v after %d lists, want the last answer and no list", w, reader.lists)
	}
	dep.Status.ReadyReplicas = 2
	if w := r.podRefusal(ctx, kp, dep, 2, st, t0.Add(4*podRecheck)); w != nil || reader.lists != 2 || !st.pods.at.IsZero() {
		t.Fatalf("ready: got %v after %d lists, want nothing, no list and the last look forgotten", w, reader.lists)
	}
}
