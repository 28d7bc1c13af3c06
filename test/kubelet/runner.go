// Package kubelet plays the kubelet on a machine without one: it watches the Deployments that
// KafkaPipelines own and keeps exactly spec.replicas `kpipe run` processes for each, started
// with the pod template's args and environment. Secret volumes become temporary directories.
// On scale-down a process gets SIGTERM and is waited for; a process that crashes is restarted.
// The Deployment's status (replicas, readyReplicas, availableReplicas, updatedReplicas) comes
// from the processes' /readyz, so the operator sees real readiness.
//
// The demo (hack/demo) and the end-to-end suite (test/e2e) share it. In StatusOnly mode it
// starts no process and only reports the wanted replicas as ready, which is what the envtest
// suites need of a kubelet.
package kubelet

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// Runner keeps processes in line with Deployments. Register it with SetupWithManager.
type Runner struct {
	Client client.Client
	// StatusOnly starts no process: the runner only plays the Deployment controller, reporting
	// each Deployment's wanted replicas as created, updated and ready (except where SetUnready
	// says otherwise). Binary and WorkDir are not used. The envtest suites use it.
	StatusOnly bool
	// Binary is the kpipe executable the pods' `run` argument is given to.
	Binary string
	// WorkDir holds the processes' logs and materialised Secret volumes.
	WorkDir string
	// Env is added to every process's environment (after the pod template's).
	Env []string
	// ReadyInterval is how often /readyz is probed and status written. Default 500ms.
	ReadyInterval time.Duration

	mu       sync.Mutex
	deps     map[types.NamespacedName]*deployment
	unready  map[types.NamespacedName]bool // StatusOnly: reported with no ready replica
	starts   int                           // processes started, restarts included
	restarts int                           // processes restarted after exiting on their own
	wg       sync.WaitGroup
}

type deployment struct {
	procs []*process
}

// Stats is what the runner has done so far.
type Stats struct {
	Running  int // processes alive now
	Started  int // processes started, restarts included
	Restarts int // restarts after a process exited on its own
}

// SetupWithManager watches the Deployments owned by KafkaPipelines.
func (r *Runner) SetupWithManager(mgr ctrl.Manager) error {
	r.deps = map[types.NamespacedName]*deployment{}
	if r.ReadyInterval == 0 {
		r.ReadyInterval = 500 * time.Millisecond
	}
	ownedByPipeline := predicate.NewPredicateFuncs(func(o client.Object) bool {
		d, ok := o.(*appsv1.Deployment)
		return ok && ownerPipeline(d) != ""
	})
	if err := mgr.Add(&statusWriter{r: r}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("local-kubelet").
		For(&appsv1.Deployment{}, builder.WithPredicates(ownedByPipeline)).
		// Metadata only: the name is all it needs, and a pipeline whose spec no longer decodes
		// must not stop the runner's cache either.
		Watches(&kpipev1.KafkaPipeline{}, handler.EnqueueRequestsFromMapFunc(r.ownedDeployments), builder.OnlyMetadata).
		Complete(r)
}

// ownedDeployments maps a KafkaPipeline to the Deployments it owns, so its deletion reaches
// them (there is no garbage collector here; the runner plays it).
func (r *Runner) ownedDeployments(ctx context.Context, o client.Object) []reconcile.Request {
	var list appsv1.DeploymentList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, d := range list.Items {
		if ownerPipeline(&d) == o.GetName() {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&d)})
		}
	}
	return out
}

// ownerPipeline is the name of the KafkaPipeline that owns d, or "".
func ownerPipeline(d *appsv1.Deployment) string {
	for _, ref := range d.GetOwnerReferences() {
		if ref.Kind == "KafkaPipeline" && strings.HasPrefix(ref.APIVersion, kpipev1.GroupVersion.Group+"/") {
			return ref.Name
		}
	}
	return ""
}

// Reconcile starts, stops and replaces processes so that the Deployment has spec.replicas of
// them, all from its current pod template.
func (r *Runner) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var d appsv1.Deployment
	if err := r.Client.Get(ctx, req.NamespacedName, &d); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.scaleTo(ctx, req.NamespacedName, nil, 0)
		}
		return ctrl.Result{}, err
	}
	// The garbage collector's part: a Deployment whose KafkaPipeline is gone goes too.
	kp := &metav1.PartialObjectMetadata{}
	kp.SetGroupVersionKind(kpipev1.GroupVersion.WithKind("KafkaPipeline"))
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: ownerPipeline(&d)}, kp)
	if apierrors.IsNotFound(err) || (err == nil && kp.DeletionTimestamp != nil) {
		if err := r.scaleTo(ctx, req.NamespacedName, nil, 0); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, client.IgnoreNotFound(r.Client.Delete(ctx, &d))
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	if d.DeletionTimestamp != nil {
		want = 0
	}
	if r.StatusOnly {
		r.track(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, r.scaleTo(ctx, req.NamespacedName, &d, int(want))
}

// track registers a Deployment whose status the StatusOnly runner writes.
func (r *Runner) track(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.deps[key] == nil {
		r.deps[key] = &deployment{}
	}
}

// SetUnready makes a StatusOnly runner report a Deployment's replicas as not ready (true) or
// ready again (false).
func (r *Runner) SetUnready(key types.NamespacedName, unready bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unready == nil {
		r.unready = map[types.NamespacedName]bool{}
	}
	r.unready[key] = unready
}

// scaleTo stops processes from an older template, then starts or stops to reach want.
func (r *Runner) scaleTo(ctx context.Context, key types.NamespacedName, d *appsv1.Deployment, want int) error {
	hash := ""
	if d != nil {
		hash = templateHash(&d.Spec.Template)
	}
	r.mu.Lock()
	dep := r.deps[key]
	if dep == nil {
		dep = &deployment{}
		r.deps[key] = dep
	}
	var stale, keep []*process
	for _, p := range dep.procs {
		if p.hash == hash {
			keep = append(keep, p)
		} else {
			stale = append(stale, p)
		}
	}
	for len(keep) > want {
		stale = append(stale, keep[len(keep)-1])
		keep = keep[:len(keep)-1]
	}
	dep.procs = keep
	r.mu.Unlock()

	stopAll(stale) // SIGTERM, and wait, as the kubelet does on scale-down

	for len(keep) < want {
		p, err := r.start(ctx, d, hash)
		if err != nil {
			return err
		}
		r.mu.Lock()
		dep.procs = append(dep.procs, p)
		keep = dep.procs
		r.mu.Unlock()
	}
	if want == 0 && d == nil {
		r.mu.Lock()
		delete(r.deps, key)
		r.mu.Unlock()
	}
	return nil
}

// Stats reports the processes running now and how many were started and restarted.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s Stats
	for _, d := range r.deps {
		for _, p := range d.procs {
			p.mu.Lock()
			if p.running {
				s.Running++
			}
			p.mu.Unlock()
		}
	}
	s.Started, s.Restarts = r.starts, r.restarts
	return s
}

// Kill sends SIGKILL to one running process of a Deployment, as a node losing a pod would:
// no drain, no final commit. The runner restarts it. It returns the process's name.
func (r *Runner) Kill(key types.NamespacedName) (string, error) {
	r.mu.Lock()
	d := r.deps[key]
	var procs []*process
	if d != nil {
		procs = append(procs, d.procs...)
	}
	r.mu.Unlock()
	for _, p := range procs {
		p.mu.Lock()
		cmd, running := p.cmd, p.running
		p.mu.Unlock()
		if running && cmd.Process != nil {
			return p.name, syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	return "", fmt.Errorf("no running process for %s", key)
}

// Processes lists the live processes of one Deployment: name and HTTP address, sorted.
func (r *Runner) Processes(key types.NamespacedName) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	if d := r.deps[key]; d != nil {
		for _, p := range d.procs {
			out = append(out, p.name+" "+p.addr)
		}
	}
	slices.Sort(out)
	return out
}
