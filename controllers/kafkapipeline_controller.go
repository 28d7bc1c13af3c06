// Package controllers reconciles KafkaPipelines into Deployments and scales them on lag.
package controllers

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/lag"
	"github.com/kpipe-io/kpipe/controllers/scaling"
)

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
	// SecretOptIn makes the operator use, and let pods mount, only Secrets labelled
	// kpipe.io/pipeline-access=true (`kpipe manager --secret-opt-in`). A pipeline naming another
	// Secret waits with reason SecretNotOptedIn: nothing is read from the Secret, no Kafka
	// connection is made and no Deployment applied, suspended or not.
	SecretOptIn bool
	// StatusLag decides when a change of lag alone is written to the status (statuswrite.go).
	StatusLag StatusLagWrites

	// MaxConcurrentUpgrades is how many pipelines at most roll their pods at once because the
	// operator's own rendering of the pod template changed, as after an operator upgrade
	// (`kpipe manager --max-concurrent-upgrades`). Default DefaultMaxConcurrentUpgrades;
	// negative: no limit. Changes of a spec or a Secret are never held back.
	MaxConcurrentUpgrades int

	// pacer holds the rollout slots of paced upgrades (upgrade.go); nil: no pacing.
	pacer *upgradePacer
	// podReader lists a not-ready pipeline's pods, uncached, for a refused pod contract.
	podReader client.Reader
	// podLists bounds podReader's LISTs across all pipelines (podcontract.go).
	podLists *rate.Limiter

	// secretMeta reads Secrets' metadata from the manager's metadata-only cache.
	secretMeta client.Reader

	// pipelines reads KafkaPipelines, cached as unstructured objects (see decode.go): the
	// manager's cache; the Client when nil.
	pipelines client.Reader

	mu     sync.Mutex
	states map[types.NamespacedName]*pipelineState
}

// pipelineState is what the operator remembers of a pipeline between reconciles: its apply
// cache, the failures its backoff counts, and the scaling memory. After a restart or a change
// of leader it starts empty and is rebuilt from the Deployment and the status.
type pipelineState struct {
	cache    applyCache
	failures int
	memory   scaling.Memory
	// secrets are the referenced Secrets as last read, by name: a poll whose Secrets kept
	// their resourceVersion reads none from the API server (see readSecret).
	secrets map[string]*corev1.Secret
	// statusWrittenAt is when this process last wrote the pipeline's status.
	statusWrittenAt time.Time
	// decoded and applyInputs let a steady poll skip decoding and rendering (steadypoll.go).
	decoded     *decoded
	applyInputs applyInputs
	// pods is the last look at the pods' termination messages (podcontract.go).
	pods podCheck
}

// Least privilege: the operator reads pipelines and never writes their spec; it writes their
// status with a patch; it applies Deployments (server-side apply creates and patches; the
// garbage collector deletes them with their pipeline); it reads the Secrets pipelines
// reference, to build its own Kafka client (on demand: Secret data is never cached; list and
// watch serve the metadata-only watch that wakes the pipelines referencing a Secret); it
// records events with the events.k8s.io API; it lists the pods of a pipeline that is not
// ready, for a refused pod contract in their termination messages (podcontract.go). It updates kafkapipelines/finalizers so that its
// Deployments' owner reference may block the pipeline's deletion (OwnerReferencesPermissionEnforcement).
//
// +kubebuilder:rbac:groups=kpipe.io,resources=kafkapipelines,verbs=get;list;watch
// +kubebuilder:rbac:groups=kpipe.io,resources=kafkapipelines/status,verbs=get;patch
// +kubebuilder:rbac:groups=kpipe.io,resources=kafkapipelines/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one KafkaPipeline's Deployment and status in line with its spec and with
// the lag Kafka reports: gather (spec, Secrets, Deployment, Kafka), decide (replicas), apply
// (the Deployment). Each step returns what it found or decided into an outcome; the deferred
// finalizeStatus turns the outcome into status and events, and one patch writes it.
func (r *KafkaPipelineReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	key := req.NamespacedName
	stored, kp, derr, err := r.load(ctx, key)
	if kp == nil {
		return ctrl.Result{}, err // gone, being deleted, or not readable
	}
	out := &outcome{now: r.now(), log: ctrl.LoggerFrom(ctx)}
	orig := kp.DeepCopy()
	defer func() {
		r.finalizeStatus(kp, out)
		if err := r.patchStatus(ctx, stored, orig, kp, out.now); err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, err})
		}
	}()
	if derr != nil {
		// Without a spec there is nothing to poll or scale on: stop polling and leave the
		// Deployment as it is (its pods keep consuming at the replicas they have), rather than
		// guess. A change of the object brings the next reconcile.
		r.forget(key)
		out.invalid, out.undecodable = derr, true
		return ctrl.Result{}, reconcile.TerminalError(derr)
	}

	st := r.state(key)
	spec, err := r.validate(kp)
	if err != nil {
		out.invalid = err
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	out.spec = spec
	sec, werr := r.resolveSecrets(ctx, key, spec, st)
	if werr != nil && werr.reason == ReasonSecretNotOptedIn {
		r.Lag.Release(key.String()) // no connection with credentials it may not use
	}
	if werr != nil && (!spec.Suspend || werr.reason == ReasonSecretNotOptedIn) {
		out.wait = werr
		return r.backoff(st, spec), nil // a suspended pipeline needs neither Kafka nor its Secrets
	}
	if out.current, err = r.loadDeployment(ctx, key, st.cache); err != nil {
		return ctrl.Result{}, err
	}
	out.observed, out.wait = r.observe(ctx, key, spec, sec.conn, out.current, &st.memory, out.now)
	out.decision = decide(key, kp, spec, out.current, out.observed, st, out.now)
	if err := r.applyChildren(ctx, kp, sec.hash, st, out); err != nil {
		return ctrl.Result{}, err
	}
	if out.wait != nil {
		return r.backoff(st, spec), nil
	}
	st.failures = 0
	if spec.Suspend {
		return ctrl.Result{}, nil // nothing to poll; a spec change brings the next reconcile
	}
	return ctrl.Result{RequeueAfter: wait.Jitter(spec.Scaling.PollInterval.Duration, 0.1)}, nil
}

// applyChildren applies the Deployment and the disruption budget, and, while the Deployment
// is not ready, looks for pods that refuse the pod contract. A failed apply is what the
// pipeline waits for.
func (r *KafkaPipelineReconciler) applyChildren(ctx context.Context, kp *kpipev1.KafkaPipeline, secretsHash string, st *pipelineState, out *outcome) error {
	var err error
	if out.applied, err = r.applyIfChanged(ctx, kp, secretsHash, out.decision.desired, out.current, st); err != nil {
		out.wait = &waitError{reason: ReasonApplyFailed, err: err}
		return err
	}
	if out.wait == nil {
		out.wait = r.podRefusal(ctx, kp, out.applied.dep, out.decision.desired, st, out.now)
	}
	if err := r.applyDisruptionBudget(ctx, kp); err != nil {
		out.wait = &waitError{reason: ReasonApplyFailed, err: err}
		return err
	}
	return nil
}

// backoff counts a failure and requeues with an exponential backoff from the poll interval up
// to MaxBackoff, with jitter.
func (r *KafkaPipelineReconciler) backoff(st *pipelineState, spec *kpipev1.KafkaPipelineSpec) ctrl.Result {
	st.failures++
	base := spec.Scaling.PollInterval.Duration
	if base <= 0 {
		base = kpipev1.DefaultPollInterval
	}
	maxBackoff := r.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 2 * time.Minute
	}
	d := base
	for i := 1; i < st.failures && d < maxBackoff; i++ {
		d *= 2
	}
	return ctrl.Result{RequeueAfter: wait.Jitter(min(d, max(maxBackoff, base)), 0.2)}
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
	if r.pacer != nil {
		r.pacer.forget(key)
	}
	forgetMetrics(key.Namespace, key.Name)
}
