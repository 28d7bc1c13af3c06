// Package kubelet plays the kubelet on a machine without one: it watches the Deployments that
// KafkaPipelines own and keeps exactly spec.replicas `kpipe run` processes for each, started
// with the pod template's args and environment. Secret volumes become temporary directories.
// On scale-down a process gets SIGTERM and is waited for; a process that crashes is restarted.
// The Deployment's status (replicas, readyReplicas, availableReplicas, updatedReplicas) comes
// from the processes' /readyz, so the operator sees real readiness.
//
// The demo (hack/demo) and the end-to-end suite (test/e2e) share it.
package kubelet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	starts   int // processes started, restarts included
	restarts int // processes restarted after exiting on their own
	wg       sync.WaitGroup
}

type deployment struct {
	procs []*process
}

// process is one replica: a supervised `kpipe run` that is restarted when it exits on its own.
type process struct {
	name    string
	hash    string // pod template hash it was started from
	addr    string // KPIPE_HTTP_ADDR
	grace   time.Duration
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	cmd     *exec.Cmd
	running bool
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
		Watches(&kpipev1.KafkaPipeline{}, handler.EnqueueRequestsFromMapFunc(r.ownedDeployments)).
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
			r.scaleTo(ctx, req.NamespacedName, nil, 0)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	// The garbage collector's part: a Deployment whose KafkaPipeline is gone goes too.
	var kp kpipev1.KafkaPipeline
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: ownerPipeline(&d)}, &kp)
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
	return ctrl.Result{}, r.scaleTo(ctx, req.NamespacedName, &d, int(want))
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

func stopAll(ps []*process) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.terminate() }()
	}
	wg.Wait()
}

// start renders the pod's container into a command and supervises it.
func (r *Runner) start(ctx context.Context, d *appsv1.Deployment, hash string) (*process, error) {
	spec := d.Spec.Template.Spec
	if len(spec.Containers) == 0 {
		return nil, fmt.Errorf("deployment %s/%s has no container", d.Namespace, d.Name)
	}
	c := spec.Containers[0]
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%s-%s", d.Name, randSuffix())
	dir := filepath.Join(r.WorkDir, d.Namespace, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	mounts, err := r.materialiseSecrets(ctx, d.Namespace, spec, c, dir)
	if err != nil {
		return nil, err
	}
	env, err := r.containerEnv(ctx, d.Namespace, name, c, mounts)
	if err != nil {
		return nil, err
	}
	env = append(env, kpipev1.EnvHTTPAddr+"="+addr)
	env = append(env, r.Env...)
	args := append(append([]string{}, c.Command...), c.Args...)
	if len(c.Command) > 0 {
		args = args[1:] // the image's entrypoint is the kpipe binary itself
	}
	grace := 30 * time.Second
	if spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	p := &process{name: name, hash: hash, addr: addr, grace: grace, stop: make(chan struct{}), done: make(chan struct{})}
	logPath := filepath.Join(dir, "log")
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.supervise(p, args, env, logPath)
	}()
	return p, nil
}

// supervise runs the process until it is told to stop, restarting it with backoff when it
// exits on its own, as a pod's restartPolicy Always does.
func (r *Runner) supervise(p *process, args, env []string, logPath string) {
	defer close(p.done)
	backoff := 200 * time.Millisecond
	for {
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return
		}
		cmd := exec.Command(r.Binary, args...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		p.mu.Lock()
		select {
		case <-p.stop:
			p.mu.Unlock()
			logf.Close()
			return
		default:
		}
		err = cmd.Start()
		if err == nil {
			p.cmd, p.running = cmd, true
			r.mu.Lock()
			r.starts++
			r.mu.Unlock()
		}
		p.mu.Unlock()
		if err == nil {
			_ = cmd.Wait()
		}
		logf.Close()
		p.mu.Lock()
		p.running = false
		p.mu.Unlock()
		select {
		case <-p.stop:
			return
		case <-time.After(backoff):
		}
		r.mu.Lock()
		r.restarts++
		r.mu.Unlock()
		backoff = min(2*backoff, 5*time.Second)
	}
}

// terminate sends SIGTERM, waits up to the grace period, then kills, as the kubelet does.
func (p *process) terminate() {
	p.mu.Lock()
	close(p.stop)
	cmd, running := p.cmd, p.running
	p.mu.Unlock()
	if running && cmd.Process != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(p.grace):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	<-p.done
}

func (p *process) ready(hc *http.Client) bool {
	p.mu.Lock()
	running := p.running
	p.mu.Unlock()
	if !running {
		return false
	}
	resp, err := hc.Get("http://" + p.addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// containerEnv resolves the container's environment as the kubelet would: literal values,
// Secret and ConfigMap keys, and the pod's own name and namespace. Values that point into a
// mounted volume are redirected to the volume's directory on this machine.
func (r *Runner) containerEnv(ctx context.Context, ns, pod string, c corev1.Container, mounts map[string]string) ([]string, error) {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "HOSTNAME=" + pod}
	for _, e := range c.Env {
		v := e.Value
		if src := e.ValueFrom; src != nil {
			var err error
			switch {
			case src.SecretKeyRef != nil:
				v, err = r.secretKey(ctx, ns, src.SecretKeyRef.Name, src.SecretKeyRef.Key)
			case src.ConfigMapKeyRef != nil:
				var cm corev1.ConfigMap
				if err = r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: src.ConfigMapKeyRef.Name}, &cm); err == nil {
					v = cm.Data[src.ConfigMapKeyRef.Key]
				}
			case src.FieldRef != nil && src.FieldRef.FieldPath == "metadata.name":
				v = pod
			case src.FieldRef != nil && src.FieldRef.FieldPath == "metadata.namespace":
				v = ns
			}
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		}
		for mountPath, dir := range mounts {
			if v == mountPath || strings.HasPrefix(v, mountPath+"/") {
				v = dir + strings.TrimPrefix(v, mountPath)
			}
		}
		env = append(env, e.Name+"="+v)
	}
	return env, nil
}

func (r *Runner) secretKey(ctx context.Context, ns, name, key string) (string, error) {
	var s corev1.Secret
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		return "", err
	}
	return string(s.Data[key]), nil
}

// materialiseSecrets writes each Secret volume the container mounts into a directory under
// dir, and returns mount path -> directory.
func (r *Runner) materialiseSecrets(ctx context.Context, ns string, spec corev1.PodSpec, c corev1.Container, dir string) (map[string]string, error) {
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok || v.Secret == nil {
			continue
		}
		var s corev1.Secret
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: v.Secret.SecretName}, &s); err != nil {
			return nil, fmt.Errorf("secret volume %s: %w", v.Name, err)
		}
		vdir := filepath.Join(dir, "volumes", v.Name)
		if err := os.MkdirAll(vdir, 0o700); err != nil {
			return nil, err
		}
		for k, data := range s.Data {
			if err := os.WriteFile(filepath.Join(vdir, k), data, 0o600); err != nil {
				return nil, err
			}
		}
		mounts[m.MountPath] = vdir
	}
	return mounts, nil
}

// statusWriter probes /readyz and writes each Deployment's status, as the Deployment
// controller and kubelet together would.
type statusWriter struct{ r *Runner }

func (s *statusWriter) Start(ctx context.Context) error {
	hc := &http.Client{Timeout: time.Second}
	t := time.NewTicker(s.r.ReadyInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.r.shutdown()
			return nil
		case <-t.C:
			s.r.writeStatus(ctx, hc)
		}
	}
}

func (r *Runner) writeStatus(ctx context.Context, hc *http.Client) {
	r.mu.Lock()
	snapshot := map[types.NamespacedName][]*process{}
	for k, d := range r.deps {
		snapshot[k] = append([]*process(nil), d.procs...)
	}
	r.mu.Unlock()
	for key, procs := range snapshot {
		var d appsv1.Deployment
		if err := r.Client.Get(ctx, key, &d); err != nil {
			continue
		}
		hash := templateHash(&d.Spec.Template)
		var ready, updated int32
		for _, p := range procs {
			if p.hash == hash {
				updated++
			}
			if p.ready(hc) {
				ready++
			}
		}
		st := appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation,
			Replicas:           int32(len(procs)),
			UpdatedReplicas:    updated,
			ReadyReplicas:      ready,
			AvailableReplicas:  ready,
		}
		if n := int32(len(procs)) - ready; n > 0 {
			st.UnavailableReplicas = n
		}
		if equalStatus(d.Status, st) {
			continue
		}
		patch := client.MergeFrom(d.DeepCopy())
		d.Status = st
		_ = r.Client.Status().Patch(ctx, &d, patch)
	}
}

func equalStatus(a, b appsv1.DeploymentStatus) bool {
	return a.ObservedGeneration == b.ObservedGeneration && a.Replicas == b.Replicas &&
		a.UpdatedReplicas == b.UpdatedReplicas && a.ReadyReplicas == b.ReadyReplicas &&
		a.AvailableReplicas == b.AvailableReplicas && a.UnavailableReplicas == b.UnavailableReplicas
}

// shutdown stops every process (SIGTERM, then wait) and the supervisors.
func (r *Runner) shutdown() {
	r.mu.Lock()
	var all []*process
	for _, d := range r.deps {
		all = append(all, d.procs...)
	}
	r.deps = map[types.NamespacedName]*deployment{}
	r.mu.Unlock()
	stopAll(all)
	r.wg.Wait()
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
	sort.Strings(out)
	return out
}

func templateHash(t *corev1.PodTemplateSpec) string {
	b, _ := json.Marshal(t)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

var (
	suffixMu  sync.Mutex
	suffixSeq int
)

func randSuffix() string {
	suffixMu.Lock()
	defer suffixMu.Unlock()
	suffixSeq++
	return fmt.Sprintf("%05d", suffixSeq)
}
