package controllers_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers"
	"github.com/kpipe-io/kpipe/controllers/lag"
	"github.com/kpipe-io/kpipe/controllers/manager"
	"github.com/kpipe-io/kpipe/test/envtest"
)

// An operator upgrade, on a control plane of its own: the operator runs as "version A" (one
// image), then as "version B" (another image, so every rendered pod template changes), with at
// most two paced rollouts at a time. The Deployment controller is played by rolloutPlayer,
// which the test lets finish rollouts or holds them mid-way; a watch of every Deployment checks
// after each change that no more than two pipelines are mid-upgrade.
const (
	imageA, imageB = "kpipe:version-a", "kpipe:version-b"
	upgradeLimit   = 2
)

var _ = Describe("an operator upgrade", Ordered, func() {
	const (
		limit   = upgradeLimit
		running = 6
		ns      = "upgrade"
	)
	ctx := context.Background()
	var (
		admin    client.WithWatch
		operator *rest.Config
		player   *rolloutPlayer
		watcher  *upgradeWatcher
		stopOp   func()
		keys     []types.NamespacedName // the running pipelines
		idle     types.NamespacedName   // suspended: zero replicas
	)

	BeforeAll(func() {
		e, err := envtest.Start()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(e.Stop)
		scheme := manager.Scheme()
		admin, err = client.NewWithWatch(e.Config, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		operator = installRBAC(e, admin, scheme)
		Expect(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		player = startRolloutPlayer(admin, ns, imageB)
	})

	AfterAll(func() {
		if stopOp != nil {
			stopOp()
		}
	})

	It("runs version A: every pipeline's Deployment rolled out", func() {
		stopOp = startOperator(operator, imageA, limit)
		for i := range running {
			kp := newPipeline(ns, fmt.Sprintf("p%d", i), []string{"orders"}, func(kp *kpipev1.KafkaPipeline) {
				kp.Spec.Scaling.Mode = kpipev1.ScalingManual
				kp.Spec.Replicas = ptr.To[int32](1)
			})
			Expect(admin.Create(ctx, kp)).To(Succeed())
			keys = append(keys, client.ObjectKeyFromObject(kp))
		}
		suspended := newPipeline(ns, "suspended", []string{"orders"}, func(kp *kpipev1.KafkaPipeline) { kp.Spec.Suspend = true })
		Expect(admin.Create(ctx, suspended)).To(Succeed())
		idle = client.ObjectKeyFromObject(suspended)
		Eventually(func(g Gomega) {
			for _, k := range append([]types.NamespacedName{idle}, keys...) {
				d := &appsv1.Deployment{}
				g.Expect(admin.Get(ctx, k, d)).To(Succeed())
				g.Expect(image(d)).To(Equal(imageA))
				g.Expect(rolledOut(d)).To(BeTrue(), "%s", k)
			}
		}).Should(Succeed())
	})

	It("restarted as version B, rolls at most two pipelines at a time; zero replicas at once", func() {
		watcher = watchUpgrade(admin, ns, imageB)
		player.hold.Store(true) // rollouts of B stay mid-way until released
		stopOp()
		stopOp = startOperator(operator, imageB, limit)

		Eventually(func(g Gomega) {
			g.Expect(image(deploymentOf(g, admin, idle))).To(Equal(imageB), "zero replicas: nothing restarts, updated at once")
			g.Expect(upgraded(g, admin, keys)).To(HaveLen(limit))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(upgraded(g, admin, keys)).To(HaveLen(limit), "the others wait for a slot")
		}, 3*time.Second, 200*time.Millisecond).Should(Succeed())
	})

	It("counts the rollouts a previous process started after another restart", func() {
		stopOp()
		stopOp = startOperator(operator, imageB, limit)
		Consistently(func(g Gomega) {
			g.Expect(upgraded(g, admin, keys)).To(HaveLen(limit))
		}, 3*time.Second, 200*time.Millisecond).Should(Succeed())
	})

	It("rolls a user's spec change at once, while the upgrade is paced", func() {
		var user types.NamespacedName
		Eventually(func(g Gomega) {
			done := upgraded(g, admin, keys)
			for _, k := range keys {
				if !done[k] {
					user = k
					return
				}
			}
		}).Should(Succeed())
		watcher.exempt(user) // a rollout of the user's, not of the upgrade
		kp := &kpipev1.KafkaPipeline{}
		Expect(admin.Get(ctx, user, kp)).To(Succeed())
		patch := client.MergeFrom(kp.DeepCopy()) // the operator writes status meanwhile
		kp.Spec.Processor.Forward.Topic = "changed-by-user"
		Expect(admin.Patch(ctx, kp, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			d := deploymentOf(g, admin, user)
			g.Expect(image(d)).To(Equal(imageB), "the new spec rolls with the new operator's template")
			g.Expect(specEnv(d)).To(ContainSubstring(`"changed-by-user"`))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			others := upgraded(g, admin, keys)
			delete(others, user)
			g.Expect(others).To(HaveLen(limit), "the user's rollout takes no upgrade slot, nor frees one")
		}, 2*time.Second, 200*time.Millisecond).Should(Succeed())
	})

	It("upgrades every pipeline as earlier rollouts complete, never more than two at once", func() {
		player.hold.Store(false)
		Eventually(func(g Gomega) {
			for _, k := range append([]types.NamespacedName{idle}, keys...) {
				d := deploymentOf(g, admin, k)
				g.Expect(image(d)).To(Equal(imageB), "%s", k)
				g.Expect(rolledOut(d)).To(BeTrue(), "%s", k)
				g.Expect(d.Annotations).NotTo(HaveKey(controllers.UpgradeAnnotation), "%s: the slot's mark goes with the rollout", k)
			}
		}).WithTimeout(2 * time.Minute).Should(Succeed())
		most, violations := watcher.result()
		Expect(violations).To(BeEmpty())
		Expect(most).To(Equal(limit), "the slots were used")
	})
})

// startOperator runs a manager as `kpipe manager --pipeline-image=img --max-concurrent-upgrades=n`
// and returns what stops it.
func startOperator(cfg *rest.Config, img string, n int) func() {
	r := &controllers.KafkaPipelineReconciler{
		Image: img, MaxConcurrentUpgrades: n, MaxBackoff: 2 * time.Second,
		Lag: lag.NewReader(lag.Options{Timeout: 2 * time.Second}),
	}
	mgr, err := manager.New(cfg, manager.Options{QPS: 100, Burst: 200, SkipNameValidation: true}, r)
	Expect(err).NotTo(HaveOccurred())
	mctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(mctx)).To(Succeed())
	}()
	return func() { cancel(); Eventually(done).Should(BeClosed()) }
}

func image(d *appsv1.Deployment) string { return d.Spec.Template.Spec.Containers[0].Image }

func specEnv(d *appsv1.Deployment) string {
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == kpipev1.EnvPipelineSpec {
			return e.Value
		}
	}
	return ""
}

func deploymentOf(g Gomega, c client.Client, key types.NamespacedName) *appsv1.Deployment {
	d := &appsv1.Deployment{}
	g.Expect(c.Get(context.Background(), key, d)).To(Succeed())
	return d
}

// upgraded is the set of keys whose Deployment has the new image.
func upgraded(g Gomega, c client.Client, keys []types.NamespacedName) map[types.NamespacedName]bool {
	out := map[types.NamespacedName]bool{}
	for _, k := range keys {
		if d := deploymentOf(g, c, k); image(d) == imageB {
			out[k] = true
		}
	}
	return out
}

func wantReplicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// rolledOut is whether the Deployment controller finished rolling out the current template.
func rolledOut(d *appsv1.Deployment) bool {
	want := wantReplicas(d)
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas >= want && s.AvailableReplicas >= want
}

// rolloutPlayer plays the Deployment controller for one namespace: it finishes each rollout
// half a second after it sees the Deployment's generation (old pods stay available meanwhile),
// except rollouts to heldImage while hold is set, which stay mid-way.
type rolloutPlayer struct {
	c        client.Client
	ns, held string
	hold     atomic.Bool
	seen     map[string]time.Time // namespace/name/generation: first seen
}

func startRolloutPlayer(c client.Client, ns, heldImage string) *rolloutPlayer {
	p := &rolloutPlayer{c: c, ns: ns, held: heldImage, seen: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	DeferCleanup(cancel)
	go func() {
		for ctx.Err() == nil {
			p.step(ctx)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return p
}

func (p *rolloutPlayer) step(ctx context.Context) {
	var list appsv1.DeploymentList
	if p.c.List(ctx, &list, client.InNamespace(p.ns)) != nil {
		return
	}
	for i := range list.Items {
		d := &list.Items[i]
		want := wantReplicas(d)
		genKey := fmt.Sprintf("%s/%d", d.Name, d.Generation)
		if _, ok := p.seen[genKey]; !ok {
			p.seen[genKey] = time.Now()
		}
		updated := want
		if want > 0 && ((p.hold.Load() && image(d) == p.held) || time.Since(p.seen[genKey]) < 500*time.Millisecond) {
			updated = 0 // mid-rollout: the old pods serve
		}
		st := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: want, UpdatedReplicas: updated,
			ReadyReplicas: want, AvailableReplicas: want}
		if equality.Semantic.DeepEqual(d.Status, st) {
			continue
		}
		patch := client.MergeFrom(d.DeepCopy())
		d.Status = st
		_ = p.c.Status().Patch(ctx, d, patch)
	}
}

// upgradeWatcher follows every change of the namespace's Deployments, in the API server's
// order, and records after each how many are mid-upgrade: on the new image, with replicas, and
// not rolled out.
type upgradeWatcher struct {
	newImage string

	mu         sync.Mutex
	state      map[types.NamespacedName]*appsv1.Deployment
	exempted   map[types.NamespacedName]bool
	most       int
	violations []string
}

func watchUpgrade(c client.WithWatch, ns, newImage string) *upgradeWatcher {
	w := &upgradeWatcher{newImage: newImage, state: map[types.NamespacedName]*appsv1.Deployment{}, exempted: map[types.NamespacedName]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	DeferCleanup(cancel)
	var list appsv1.DeploymentList
	Expect(c.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	for i := range list.Items {
		w.state[client.ObjectKeyFromObject(&list.Items[i])] = &list.Items[i]
	}
	rv := list.ResourceVersion
	go func() {
		defer GinkgoRecover()
		for ctx.Err() == nil {
			wi, err := c.Watch(ctx, &appsv1.DeploymentList{}, client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			rv = w.follow(wi, rv)
		}
	}()
	return w
}

// follow applies a watch's events until it ends, and returns the last resourceVersion seen.
func (w *upgradeWatcher) follow(wi watch.Interface, rv string) string {
	defer wi.Stop()
	for ev := range wi.ResultChan() {
		d, ok := ev.Object.(*appsv1.Deployment)
		if !ok {
			continue
		}
		rv = d.ResourceVersion
		w.mu.Lock()
		if ev.Type == watch.Deleted {
			delete(w.state, client.ObjectKeyFromObject(d))
		} else {
			w.state[client.ObjectKeyFromObject(d)] = d
		}
		w.check(d.ResourceVersion)
		w.mu.Unlock()
	}
	return rv
}

// check counts the Deployments mid-upgrade; w.mu is held.
func (w *upgradeWatcher) check(rv string) {
	var mid []string
	for k, d := range w.state {
		if !w.exempted[k] && image(d) == w.newImage && wantReplicas(d) > 0 && !rolledOut(d) {
			mid = append(mid, k.Name)
		}
	}
	w.most = max(w.most, len(mid))
	if len(mid) > upgradeLimit {
		w.violations = append(w.violations, fmt.Sprintf("at resourceVersion %s: %v", rv, mid))
	}
}

func (w *upgradeWatcher) exempt(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.exempted[key] = true
}

func (w *upgradeWatcher) result() (int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.most, w.violations
}
