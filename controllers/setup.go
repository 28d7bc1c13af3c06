package controllers

import (
	"context"
	"fmt"

	"golang.org/x/time/rate"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/kpipe-io/kpipe/controllers/lag"
)

// secretRefIndex indexes KafkaPipelines by the names of the Secrets they reference.
const secretRefIndex = ".spec.secretRefs"

// SetupWithManager registers the reconciler with a manager: it watches KafkaPipelines (spec
// changes), their Deployments (spec changes and readiness, see deploymentChanged), and the
// metadata of the Secrets they reference: a Secret's data is read on demand, never cached.
func (r *KafkaPipelineReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Lag == nil {
		r.Lag = lag.NewReader(lag.Options{})
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("kpipe")
	}
	r.secretMeta = mgr.GetCache()
	r.pacer = newUpgradePacer(r.MaxConcurrentUpgrades, mgr.GetCache())
	r.podReader = mgr.GetAPIReader()
	r.podLists = rate.NewLimiter(podListRate, podListBurst)
	if r.pipelines == nil {
		r.pipelines = mgr.GetCache() // unstructured reads from the cache, not the API server
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), pipelineObject(), secretRefIndex, secretRefs); err != nil {
		return fmt.Errorf("index pipelines by secret: %w", err)
	}
	workers := r.MaxConcurrentReconciles
	if workers <= 0 {
		workers = 4
	}
	// Close the Kafka clients when the manager stops (or loses the lease).
	if err := mgr.Add(closeOnStop{r.Lag}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(pipelineObject(), builder.WithPredicates(predicate.GenerationChangedPredicate{})). // unstructured: decode.go
		Owns(&appsv1.Deployment{}, builder.WithPredicates(deploymentChanged)).
		Owns(&policyv1.PodDisruptionBudget{}).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.pipelinesForSecret)).
		// A pipeline waiting for a rollout slot, woken when one frees (upgrade.go).
		WatchesRawSource(source.Channel(r.pacer.wake, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Named("kafkapipeline").
		Complete(r)
}

// deploymentChanged lets through the updates of an owned Deployment that the reconcile acts
// on before its next poll: a new generation (someone else changed the spec; the apply restores
// kpipe's fields), and a change of readiness (Ready, or whether any replica is ready to
// consume). Other status churn (counts on the way, conditions, timestamps) waits for the next
// poll instead of costing one. Creates and deletes always pass.
var deploymentChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*appsv1.Deployment)
		cur, okNew := e.ObjectNew.(*appsv1.Deployment)
		if !okOld || !okNew {
			return true
		}
		return old.Generation != cur.Generation ||
			specReady(old) != specReady(cur) ||
			(old.Status.ReadyReplicas == 0) != (cur.Status.ReadyReplicas == 0)
	},
}

// specReady is deploymentReady for the Deployment's own replica count.
func specReady(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return deploymentReady(d, want)
}

type closeOnStop struct{ r *lag.Reader }

func (c closeOnStop) Start(ctx context.Context) error {
	<-ctx.Done()
	c.r.Close()
	return nil
}

// secretRefs lists the Secrets a pipeline references, for the field index. Pipelines are
// cached unstructured (decode.go): a field of the wrong type references nothing.
func secretRefs(obj client.Object) []string {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil
	}
	var names []string
	for _, path := range [][]string{
		{"spec", "kafka", "tls", "secretRef", "name"},
		{"spec", "kafka", "sasl", "secretRef", "name"},
		{"spec", "processor", "http", "headersSecretRef", "name"},
	} {
		if name, _, _ := unstructured.NestedString(u.Object, path...); name != "" {
			names = append(names, name)
		}
	}
	return names
}

// pipelinesForSecret maps a Secret to the pipelines of its namespace that reference it.
func (r *KafkaPipelineReconciler) pipelinesForSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	list := pipelineList()
	if err := r.reader().List(ctx, list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{secretRefIndex: obj.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list pipelines referencing a secret", "secret", obj.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, kp := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: kp.GetNamespace(), Name: kp.GetName()}})
	}
	return reqs
}
