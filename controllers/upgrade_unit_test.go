package controllers

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/render"
)

// deploymentWith is a Deployment with the given pod config hash and Deployment annotations.
func deploymentWith(hash string, annotations map[string]string) *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Annotations: annotations}}
	d.Spec.Template.Annotations = map[string]string{kpipev1.ConfigHashAnnotation: hash}
	return d
}

func TestClassifyTemplateChange(t *testing.T) {
	kp := &kpipev1.KafkaPipeline{ObjectMeta: metav1.ObjectMeta{Generation: 4}}
	kp.Status.ObservedGeneration = 4
	inputs := map[string]string{render.SpecGenerationAnnotation: "4", render.SecretsHashAnnotation: "s1"}
	rendered := deploymentWith("new", inputs)
	running := func(live *appsv1.Deployment) current { return current{exists: true, replicas: 2, dep: live} }
	for _, tt := range []struct {
		name    string
		cur     current
		desired int32
		kp      *kpipev1.KafkaPipeline
		want    templateChange
	}{
		{"no Deployment yet", current{}, 2, kp, templateImmediate},
		{"same template", running(deploymentWith("new", inputs)), 2, kp, templateSame},
		{"only the operator's rendering changed", running(deploymentWith("old", inputs)), 2, kp, templateOperator},
		{"the spec changed", running(deploymentWith("old", map[string]string{render.SpecGenerationAnnotation: "3", render.SecretsHashAnnotation: "s1"})), 2, kp, templateImmediate},
		{"a Secret rotated", running(deploymentWith("old", map[string]string{render.SpecGenerationAnnotation: "4", render.SecretsHashAnnotation: "s0"})), 2, kp, templateImmediate},
		{"zero replicas now", current{exists: true, replicas: 0, dep: deploymentWith("old", inputs)}, 2, kp, templateImmediate},
		{"scaling to zero", running(deploymentWith("old", inputs)), 0, kp, templateImmediate},
		{"an older operator's Deployment, spec unchanged since", running(deploymentWith("old", nil)), 2, kp, templateOperator},
		{"an older operator's Deployment, spec changed since", running(deploymentWith("old", nil)), 2,
			&kpipev1.KafkaPipeline{ObjectMeta: metav1.ObjectMeta{Generation: 5}, Status: kpipev1.KafkaPipelineStatus{ObservedGeneration: 4}}, templateImmediate},
	} {
		if got := classify(tt.kp, rendered, tt.cur, tt.desired); got != tt.want {
			t.Errorf("%s: classify = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestRolloutDone(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
	d.Spec.Replicas = new(int32(2))
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 3, UpdatedReplicas: 1, AvailableReplicas: 2}
	if rolloutDone(d) {
		t.Error("done with one of two replicas updated")
	}
	d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded"}}
	if !rolloutDone(d) {
		t.Error("a rollout past its progress deadline holds its slot")
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, UpdatedReplicas: 2, AvailableReplicas: 2}
	if rolloutDone(d) {
		t.Error("done before the Deployment controller saw the generation")
	}
	d.Status.ObservedGeneration = 3
	if !rolloutDone(d) {
		t.Error("not done with every replica updated and available")
	}
}

// The pacer gives out its slots, queues the rest, and wakes the oldest waiting pipeline when a
// rollout finishes.
func TestUpgradePacerSlots(t *testing.T) {
	ctx := context.Background()
	p := newUpgradePacer(2, nil)
	a, b, c, d := types.NamespacedName{Name: "a"}, types.NamespacedName{Name: "b"}, types.NamespacedName{Name: "c"}, types.NamespacedName{Name: "d"}
	granted := func(key types.NamespacedName) bool { ok, _ := p.acquire(ctx, key); return ok }
	if ok, fresh := p.acquire(ctx, a); !ok || !fresh || !granted(b) {
		t.Fatal("two slots")
	}
	if ok, fresh := p.acquire(ctx, a); !ok || fresh {
		t.Fatal("a holder keeps its own slot, not a new one")
	}
	if granted(c) || granted(d) || granted(c) {
		t.Fatal("a third rollout got a slot")
	}
	p.started(a, 5)
	mid := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: 4}}
	mid.Status = appsv1.DeploymentStatus{ObservedGeneration: 4, UpdatedReplicas: 1, AvailableReplicas: 1}
	if !p.rolling(ctx, a, mid) {
		t.Error("a cache behind the apply ended the rollout")
	}
	mid.Generation, mid.Status.ObservedGeneration = 5, 5
	if p.rolling(ctx, a, mid) {
		t.Error("a finished rollout keeps its slot")
	}
	select {
	case ev := <-p.wake:
		if ev.Object.GetName() != "c" {
			t.Errorf("woke %s, want the oldest waiting, c", ev.Object.GetName())
		}
	default:
		t.Error("nothing woken")
	}
	if !granted(c) || granted(d) {
		t.Error("the freed slot went elsewhere")
	}
	p.forget(b)
	if !granted(d) {
		t.Error("a deleted pipeline kept its slot")
	}
	// d's apply fails: its slot goes back, and the next pipeline may take it.
	p.abandon(d)
	if !granted(b) {
		t.Error("a failed apply kept its slot")
	}
}
