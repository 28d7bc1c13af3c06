package controllers

import (
	"context"
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/render"
)

// Paced upgrades. An operator upgrade changes the pod template the operator renders for every
// pipeline (a new image, a new variable of the pod contract): applied at once, every pipeline
// would restart together. A template change that neither the pipeline's spec nor its Secrets
// caused is therefore rolled out to at most MaxConcurrentUpgrades pipelines at a time; the
// others keep their current template, and keep scaling, until a slot frees. A change of the
// spec or of a Secret rolls at once, as does any change of a pipeline at zero replicas.

// DefaultMaxConcurrentUpgrades is MaxConcurrentUpgrades when it is zero.
const DefaultMaxConcurrentUpgrades = 5

// UpgradeAnnotation is on a Deployment while a rollout caused by the operator's own rendering
// runs; its value is the config hash rolled out to. It lets a restarted operator count the
// rollouts its predecessor started.
const UpgradeAnnotation = "kpipe.io/paced-rollout"

// ReasonUpgradeRollout is the event of a pipeline whose pods roll because the operator's
// rendering changed.
const ReasonUpgradeRollout = "UpgradeRollout"

// upgradePacer owns the slots of paced rollouts: which pipelines roll now, and which wait.
type upgradePacer struct {
	max    int           // slots; negative: no limit
	reader client.Reader // the manager's cache
	wake   chan event.GenericEvent

	mu       sync.Mutex
	rebuilt  bool                           // inflight was rebuilt from the cache after a start
	inflight map[types.NamespacedName]int64 // rolling, with the Deployment generation applied (0: not yet)
	waiting  []types.NamespacedName         // in arrival order, each once
}

func newUpgradePacer(limit int, reader client.Reader) *upgradePacer {
	if limit == 0 {
		limit = DefaultMaxConcurrentUpgrades
	}
	return &upgradePacer{max: limit, reader: reader, wake: make(chan event.GenericEvent, 64),
		inflight: map[types.NamespacedName]int64{}}
}

// templateChange is what a newly rendered pod template is to the Deployment's current one.
type templateChange int

const (
	templateSame      templateChange = iota // nothing rolls
	templateImmediate                       // the spec or a Secret changed, or nothing runs: roll now
	templateOperator                        // only the operator's rendering changed: paced
)

// classify compares the rendered Deployment with the current one. A Deployment rendered by an
// operator that did not record the spec generation counts as rendered from the generation
// the status last observed.
func classify(kp *kpipev1.KafkaPipeline, rendered *appsv1.Deployment, cur current, desired int32) templateChange {
	live := cur.dep
	if live == nil {
		return templateImmediate // new, or not in the cache yet: nothing to pace
	}
	if configHash(&live.Spec.Template) == configHash(&rendered.Spec.Template) {
		return templateSame
	}
	if cur.replicas == 0 || desired == 0 {
		return templateImmediate // no pod restarts: they start from the new template, or stop
	}
	gen, recorded := live.Annotations[render.SpecGenerationAnnotation]
	specChanged := kp.Status.ObservedGeneration != kp.Generation
	if recorded {
		specChanged = gen != strconv.FormatInt(kp.Generation, 10)
	}
	secretsChanged := live.Annotations[render.SecretsHashAnnotation] != rendered.Annotations[render.SecretsHashAnnotation]
	if !recorded {
		secretsChanged = false // unknown: an older operator's Deployment; take it as unchanged
	}
	if specChanged || secretsChanged {
		return templateImmediate
	}
	return templateOperator
}

func configHash(t *corev1.PodTemplateSpec) string { return t.Annotations[kpipev1.ConfigHashAnnotation] }

// acquire gives key a slot for a paced rollout (granted; fresh when it did not hold one), or
// queues it. A key that holds a slot keeps it.
func (p *upgradePacer) acquire(ctx context.Context, key types.NamespacedName) (granted, fresh bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rebuild(ctx)
	if _, ok := p.inflight[key]; ok {
		return true, false
	}
	p.releaseDone(ctx)
	if len(p.inflight) < p.max {
		p.inflight[key] = 0
		p.dequeue(key)
		p.report()
		return true, true
	}
	if !slices.Contains(p.waiting, key) {
		p.waiting = append(p.waiting, key)
		p.report()
	}
	return false, false
}

// started records the Deployment generation the paced apply of key produced, so that a cache
// that has not seen the apply yet does not end the rollout.
func (p *upgradePacer) started(key types.NamespacedName, generation int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight[key] = generation
}

// rolling is whether key holds a slot: its Deployment keeps UpgradeAnnotation while it does.
// A finished rollout gives the slot up here, and wakes the next waiting pipelines.
func (p *upgradePacer) rolling(ctx context.Context, key types.NamespacedName, live *appsv1.Deployment) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rebuild(ctx)
	gen, ok := p.inflight[key]
	if !ok {
		return false
	}
	if live == nil || live.Generation < gen || !rolloutDone(live) {
		return true
	}
	delete(p.inflight, key)
	p.wakeWaiting()
	p.report()
	return false
}

// abandon gives up key's slot when its paced apply has not been made yet (it failed); the
// next reconcile asks again, behind the waiting ones.
func (p *upgradePacer) abandon(key types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen, ok := p.inflight[key]; ok && gen == 0 {
		delete(p.inflight, key)
		p.wakeWaiting()
		p.report()
	}
}

// settled takes key out of the queue: its template needs no paced rollout (any more).
func (p *upgradePacer) settled(key types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dequeue(key)
	p.report()
}

// forget drops key's slot or place in the queue (the pipeline is gone).
func (p *upgradePacer) forget(key types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.inflight[key]; ok {
		delete(p.inflight, key)
		p.wakeWaiting()
	}
	p.dequeue(key)
	p.report()
}

func (p *upgradePacer) dequeue(key types.NamespacedName) {
	for i, k := range p.waiting {
		if k == key {
			p.waiting = append(p.waiting[:i], p.waiting[i+1:]...)
			return
		}
	}
}

// wakeWaiting requeues as many waiting pipelines as there are free slots, oldest first. A
// full channel drops the wake-up: the pipeline's next poll comes anyway.
func (p *upgradePacer) wakeWaiting() {
	free := p.max - len(p.inflight)
	for i := 0; i < free && i < len(p.waiting); i++ {
		k := p.waiting[i]
		obj := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}}
		select {
		case p.wake <- event.GenericEvent{Object: obj}:
		default:
		}
	}
}

// rebuild counts, once after a start, the paced rollouts a previous operator process left
// running: the Deployments with UpgradeAnnotation.
func (p *upgradePacer) rebuild(ctx context.Context) {
	if p.rebuilt || p.reader == nil {
		return
	}
	var list appsv1.DeploymentList
	if err := p.reader.List(ctx, &list, client.MatchingLabels{render.ManagedByLabel: "kpipe"}); err != nil {
		return // retried at the next acquire
	}
	for i := range list.Items {
		d := &list.Items[i]
		if d.Annotations[UpgradeAnnotation] != "" && !rolloutDone(d) {
			p.inflight[client.ObjectKeyFromObject(d)] = d.Generation
		}
	}
	p.rebuilt = true
}

// releaseDone gives up the slots of rollouts that finished without their pipeline being
// reconciled since (its reconcile may be stuck before the apply, on a missing Secret). A slot
// whose apply is still on its way (generation 0) is left to its own reconcile: the cache
// shows the previous, finished rollout until then.
func (p *upgradePacer) releaseDone(ctx context.Context) {
	if p.reader == nil {
		return
	}
	for key, gen := range p.inflight {
		if gen == 0 {
			continue
		}
		d := &appsv1.Deployment{}
		err := p.reader.Get(ctx, key, d)
		if apierrors.IsNotFound(err) || (err == nil && d.Generation >= gen && rolloutDone(d)) {
			delete(p.inflight, key)
		}
	}
}

// rolloutDone is whether a Deployment's rollout is over: the Deployment controller saw its
// latest spec and every wanted replica is updated and available; or the rollout exceeded its
// progress deadline (a pod that cannot start must not hold a slot for ever; the pipeline's
// status shows it not ready).
func rolloutDone(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return true
		}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas >= want && s.AvailableReplicas >= want
}

// report exports the slots in use and the queue; p.mu is held.
func (p *upgradePacer) report() {
	upgradesRolling.Set(float64(len(p.inflight)))
	upgradesWaiting.Set(float64(len(p.waiting)))
}

var (
	upgradesRolling = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kpipe_upgrade_rollouts_in_progress",
		Help: "Pipelines whose pods roll because the operator's rendering changed (at most --max-concurrent-upgrades).",
	})
	upgradesWaiting = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kpipe_upgrade_rollouts_waiting",
		Help: "Pipelines whose pod template the operator's rendering changed, waiting for a rollout slot.",
	})
)

func init() { metrics.Registry.MustRegister(upgradesRolling, upgradesWaiting) }
