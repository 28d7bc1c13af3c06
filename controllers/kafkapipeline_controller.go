// Package controllers reconciles KafkaPipelines into Deployments and scales them on lag.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/lag"
	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// FieldManager is the server-side apply field manager of everything the operator writes.
const FieldManager = "kpipe"

// secretRefIndex indexes KafkaPipelines by the names of the Secrets they reference.
const secretRefIndex = ".spec.secretRefs"

// KafkaPipelineReconciler reconciles KafkaPipeline objects.
type KafkaPipelineReconciler struct {
	client.Client
	// Image is the image the pipeline pods run by default: the operator's own.
	Image string
	// Recorder records events on the pipelines.
	Recorder events.EventRecorder
	// Lag is the shared lag reader; NewLagReader's default when nil.
	Lag *lag.Reader
	// StallPolls is how many polls a partition's committed offset may stay put while it has
	// lag before the partition counts as stalled. Default 6.
	StallPolls int
	// MaxConcurrentReconciles is how many pipelines are reconciled at once, so that one slow
	// Kafka cluster does not hold up the others. Default 4.
	MaxConcurrentReconciles int
	// MaxBackoff caps the wait between retries while Kafka, a topic or a Secret is missing.
	// Default 2m.
	MaxBackoff time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu     sync.Mutex
	states map[types.NamespacedName]*pipelineState
}

// pipelineState is what the operator remembers of a pipeline between polls. The informer
// cache can lag behind the operator's own writes, so the replica count it applied and the idle
// clocks are taken from here rather than from a possibly stale read. After a restart or a
// change of leader the state is rebuilt from the Deployment and the status: the
// recommendation history starts with the current replica count (so nothing scales down at
// once), stall counts start from zero.
type pipelineState struct {
	initialized bool   // a Deployment was applied by this process
	applied     int32  // the replicas it applied
	fingerprint string // of the Deployment it applied
	generation  int64  // the Deployment's generation after that apply
	idleSince   *time.Time
	zeroSince   *time.Time // when the policy scaled to zero for idleness

	history   []scaling.Recommendation
	stall     map[scaling.TopicPartition]scaling.StallState
	stalled   []scaling.TopicPartition
	progress  bool
	trackedAt time.Time
	failures  int

	// Rates: the previous poll, the per-replica rate samples and the produce rate of the last
	// interval (see scaling.MeasureRates and scaling.Capacity).
	lastPoll scaling.Poll
	capacity scaling.Capacity
	produce  float64
}

// Least privilege: the operator reads pipelines and never writes their spec; it writes their
// status with a patch; it applies Deployments (server-side apply creates and patches; the
// garbage collector deletes them with their pipeline); it reads the Secrets pipelines
// reference, to build its own Kafka client; it records events with the events.k8s.io API.
//
// +kubebuilder:rbac:groups=kpipe.io,resources=kafkapipelines,verbs=get;list;watch
// +kubebuilder:rbac:groups=kpipe.io,resources=kafkapipelines/status,verbs=get;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one KafkaPipeline's Deployment and status in line with its spec and with
// the lag Kafka reports. It gathers inputs and applies outputs; the decisions are the pure
// functions of controllers/render and controllers/scaling.
func (r *KafkaPipelineReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	kp := &kpipev1.KafkaPipeline{}
	if err := r.Get(ctx, req.NamespacedName, kp); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !kp.DeletionTimestamp.IsZero() {
		r.forget(req.NamespacedName) // the Deployment goes with it (owner reference)
		return ctrl.Result{}, nil
	}

	orig := kp.DeepCopy()
	defer func() {
		if err := r.patchStatus(ctx, orig, kp); err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, err})
		}
	}()

	run := &reconcileRun{kp: kp, key: req.NamespacedName, now: r.now(), st: r.state(req.NamespacedName), log: ctrl.LoggerFrom(ctx)}
	if err := r.validate(run); err != nil {
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	if w := r.resolveSecrets(ctx, run); w != nil && !run.spec.Suspend {
		return r.wait(run, w), nil // a suspended pipeline needs neither Kafka nor its Secrets
	}
	if err := r.loadDeployment(ctx, run); err != nil {
		return ctrl.Result{}, err
	}
	r.observe(ctx, run)
	r.decide(run)
	if err := r.applyDeployment(ctx, run); err != nil {
		r.fail(run, ReasonApplyFailed, err)
		return ctrl.Result{}, err
	}
	r.summarize(run)
	if run.pollErr != nil {
		return r.wait(run, run.pollErr), nil
	}
	run.st.failures = 0
	if run.spec.Suspend {
		return ctrl.Result{}, nil // nothing to poll; a spec change brings the next reconcile
	}
	return ctrl.Result{RequeueAfter: wait.Jitter(run.spec.Scaling.PollInterval.Duration, 0.1)}, nil
}

// SetupWithManager registers the reconciler with a manager: it watches KafkaPipelines (spec
// changes), their Deployments, and the Secrets they reference.
func (r *KafkaPipelineReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Lag == nil {
		r.Lag = lag.NewReader(lag.Options{})
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("kpipe")
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &kpipev1.KafkaPipeline{}, secretRefIndex, secretRefs); err != nil {
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
		For(&kpipev1.KafkaPipeline{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&appsv1.Deployment{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.pipelinesForSecret)).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Named("kafkapipeline").
		Complete(r)
}

type closeOnStop struct{ r *lag.Reader }

func (c closeOnStop) Start(ctx context.Context) error {
	<-ctx.Done()
	c.r.Close()
	return nil
}

// secretRefs lists the Secrets a pipeline references, for the field index.
func secretRefs(obj client.Object) []string {
	kp, ok := obj.(*kpipev1.KafkaPipeline)
	if !ok {
		return nil
	}
	var names []string
	if t := kp.Spec.Kafka.TLS; t != nil && t.SecretRef != nil {
		names = append(names, t.SecretRef.Name)
	}
	if s := kp.Spec.Kafka.SASL; s != nil {
		names = append(names, s.SecretRef.Name)
	}
	return names
}

// pipelinesForSecret maps a Secret to the pipelines of its namespace that reference it.
func (r *KafkaPipelineReconciler) pipelinesForSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	var list kpipev1.KafkaPipelineList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{secretRefIndex: obj.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list pipelines referencing a secret", "secret", obj.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, kp := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: kp.Namespace, Name: kp.Name}})
	}
	return reqs
}

func (r *KafkaPipelineReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *KafkaPipelineReconciler) state(key types.NamespacedName) *pipelineState {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.states == nil {
		r.states = map[types.NamespacedName]*pipelineState{}
	}
	st := r.states[key]
	if st == nil {
		st = &pipelineState{}
		r.states[key] = st
	}
	return st
}

// forget drops everything held for a deleted pipeline: state, Kafka connection, metrics.
func (r *KafkaPipelineReconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	delete(r.states, key)
	r.mu.Unlock()
	if r.Lag != nil {
		r.Lag.Release(key.String())
	}
	forgetMetrics(key.Namespace, key.Name)
}

// patchStatus writes the status once per reconcile, when it changed.
func (r *KafkaPipelineReconciler) patchStatus(ctx context.Context, orig, kp *kpipev1.KafkaPipeline) error {
	if equalStatus(orig.Status, kp.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, kp, client.MergeFrom(orig)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("patch status: %w", err)
	}
	return nil
}

// waitError is something the operator waits for: Ready=False with a reason, a retry later.
type waitError struct {
	reason string
	err    error
}

func (w *waitError) Error() string { return w.err.Error() }
func (w *waitError) Unwrap() error { return w.err }

// wait marks the pipeline as waiting and requeues with an exponential backoff and jitter.
func (r *KafkaPipelineReconciler) wait(run *reconcileRun, err error) ctrl.Result {
	reason := ReasonKafkaUnreachable
	var w *waitError
	if errors.As(err, &w) {
		reason = w.reason
	}
	r.fail(run, reason, err)
	run.st.failures++
	base := run.spec.Scaling.PollInterval.Duration
	if base <= 0 {
		base = kpipev1.DefaultPollInterval
	}
	maxBackoff := r.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 2 * time.Minute
	}
	d := base
	for i := 1; i < run.st.failures && d < maxBackoff; i++ {
		d *= 2
	}
	return ctrl.Result{RequeueAfter: wait.Jitter(min(d, max(maxBackoff, base)), 0.2)}
}

// fail sets Ready=False (Reconciling=True) with the reason, and records a Warning event when
// the reason is new, so a long outage does not flood the event stream.
func (r *KafkaPipelineReconciler) fail(run *reconcileRun, reason string, err error) {
	kp := run.kp
	ready := conditionReason(kp, kpipev1.ConditionReady)
	markWaiting(kp, reason, err.Error())
	if ready != reason {
		r.event(kp, true, reason, "Reconcile", "%s", err.Error())
	}
	run.log.V(1).Info("waiting", "reason", reason, "error", err.Error())
}
