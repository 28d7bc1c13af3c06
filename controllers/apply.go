package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/render"
)

// FieldManager is the server-side apply field manager of everything the operator writes.
const FieldManager = "kpipe"

// applyCache is what this process applied last for a pipeline. The informer cache can lag
// behind the operator's own writes, so the replica count it applied is taken from here rather
// than from a possibly stale read; the fingerprint and generation let an apply that would
// change nothing be skipped.
type applyCache struct {
	initialized bool   // a Deployment was applied by this process
	applied     int32  // the replicas it applied
	fingerprint string // of the Deployment it applied
	generation  int64  // the Deployment's generation after that apply
}

// applied is the outcome of applyDeployment: the Deployment for the current generation, and
// whether the apply changed the replica count.
type applied struct {
	dep    *appsv1.Deployment
	scaled bool
}

// applyDeployment writes the desired Deployment with server-side apply. With a missing Secret
// the reconcile stops before this step, so pods never point at a Secret that is gone.
func (r *KafkaPipelineReconciler) applyDeployment(ctx context.Context, kp *kpipev1.KafkaPipeline, secretsHash string,
	desired int32, cur current, cache *applyCache) (applied, error) {
	dep, err := render.Deployment(render.Input{Pipeline: kp, Image: r.Image, Replicas: desired, SecretsHash: secretsHash})
	if err != nil {
		return applied{}, err
	}
	started := r.pace(ctx, kp, dep, cur, desired)
	u, fingerprint, err := toApply(dep)
	if err != nil {
		return applied{}, err
	}
	// The same intent as last time, and nobody changed the Deployment's spec since (its
	// generation is the one the last apply returned): the apply would be a no-op, skip the
	// request. Any other writer bumps the generation, and the next apply restores kpipe's fields.
	if cache.initialized && cur.dep != nil && fingerprint == cache.fingerprint && cur.dep.Generation == cache.generation {
		return applied{dep: cur.dep}, nil
	}
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		if started {
			r.pacer.abandon(client.ObjectKeyFromObject(kp)) // a template the API refuses must not hold a slot
		}
		return applied{}, fmt.Errorf("apply deployment: %w", err)
	}
	out := &appsv1.Deployment{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		return applied{}, fmt.Errorf("convert applied deployment: %w", err)
	}
	*cache = applyCache{initialized: true, applied: desired, fingerprint: fingerprint, generation: out.Generation}
	if started {
		r.pacer.started(client.ObjectKeyFromObject(kp), out.Generation)
	}
	// A changed count, or a new Deployment with replicas, is a scale.
	scaled := (desired != cur.replicas || !cur.exists) && (cur.exists || desired != 0)
	return applied{dep: out, scaled: scaled}, nil
}

// toApply is the Deployment as the apply sends it, and its fingerprint.
func toApply(dep *appsv1.Deployment) (*unstructured.Unstructured, string, error) {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(dep)
	if err != nil {
		return nil, "", fmt.Errorf("convert deployment: %w", err)
	}
	u := &unstructured.Unstructured{Object: obj}
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
	raw, err := json.Marshal(u.Object) // map keys are sorted: a stable fingerprint
	if err != nil {
		return nil, "", fmt.Errorf("encode deployment: %w", err)
	}
	sum := sha256.Sum256(raw)
	return u, hex.EncodeToString(sum[:]), nil
}

// pace decides the pod template of the Deployment to apply (see upgrade.go). A template that
// only the operator's rendering changed waits for a rollout slot: until it has one, dep keeps
// the current template, so the apply changes replicas and nothing else. It returns whether
// this apply starts (or continues) a paced rollout.
func (r *KafkaPipelineReconciler) pace(ctx context.Context, kp *kpipev1.KafkaPipeline, dep *appsv1.Deployment, cur current, desired int32) bool {
	p := r.pacer
	if p == nil {
		return false
	}
	key := client.ObjectKeyFromObject(kp)
	change := classify(kp, dep, cur, desired)
	if change != templateOperator || p.max < 0 {
		p.settled(key)
		if p.rolling(ctx, key, cur.dep) {
			dep.Annotations[UpgradeAnnotation] = configHash(&dep.Spec.Template) // keep the slot's mark
		}
		return false
	}
	granted, fresh := p.acquire(ctx, key)
	if !granted {
		dep.Spec.Template = *cur.dep.Spec.Template.DeepCopy()
		ctrl.LoggerFrom(ctx).V(1).Info("pod template change of the operator's rendering waits for a rollout slot")
		return false
	}
	if fresh {
		r.event(kp, false, ReasonUpgradeRollout, "Upgrade", "rolling out the pod template of the upgraded operator (at most %d pipelines at a time)", p.max)
	}
	dep.Annotations[UpgradeAnnotation] = configHash(&dep.Spec.Template)
	return true
}
