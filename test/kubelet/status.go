package kubelet

import (
	"context"
	"net/http"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

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
		var st appsv1.DeploymentStatus
		if r.StatusOnly {
			st = r.wantedStatus(&d)
		} else {
			st = processStatus(&d, procs, hc)
		}
		if equalStatus(d.Status, st) {
			continue
		}
		patch := client.MergeFrom(d.DeepCopy())
		d.Status = st
		_ = r.Client.Status().Patch(ctx, &d, patch)
	}
}

// processStatus is a Deployment's status from its processes: all of them are replicas, those
// from the current template are updated, those whose /readyz answers are ready.
func processStatus(d *appsv1.Deployment, procs []*process, hc *http.Client) appsv1.DeploymentStatus {
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
	return deploymentStatus(d, int32(len(procs)), updated, ready)
}

// wantedStatus is the StatusOnly runner's status: the wanted replicas, all updated, and ready
// unless SetUnready says otherwise.
func (r *Runner) wantedStatus(d *appsv1.Deployment) appsv1.DeploymentStatus {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	ready := want
	r.mu.Lock()
	if r.unready[client.ObjectKeyFromObject(d)] {
		ready = 0
	}
	r.mu.Unlock()
	return deploymentStatus(d, want, want, ready)
}

func deploymentStatus(d *appsv1.Deployment, replicas, updated, ready int32) appsv1.DeploymentStatus {
	st := appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		Replicas:           replicas,
		UpdatedReplicas:    updated,
		ReadyReplicas:      ready,
		AvailableReplicas:  ready,
	}
	if n := replicas - ready; n > 0 {
		st.UnavailableReplicas = n
	}
	return st
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
