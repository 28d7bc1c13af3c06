// Package manager is the one way kpipe builds its scheme and a controller-runtime manager:
// `kpipe manager`, the envtest suites, the benchmarks and the harness all go through it.
package manager

import (
	"fmt"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers"
)

// LeaderElectionID is the name of the operator's leader-election lease.
const LeaderElectionID = "kpipe-manager.kpipe.io"

// Scheme is everything kpipe reads and writes: the Kubernetes built-in types and KafkaPipelines.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(kpipev1.AddToScheme(s))
	return s
}

// Options configure New.
type Options struct {
	// QPS and Burst limit the manager's requests to the API server; the configuration's own
	// when zero.
	QPS   float32
	Burst int
	// MetricsAddr and ProbeAddr are the addresses of /metrics and of /healthz and /readyz;
	// empty or "0" turns them off.
	MetricsAddr string
	ProbeAddr   string
	// MetricsSecure serves /metrics over HTTPS, to authenticated and authorized callers only
	// (see metricsOptions); plain HTTP when false.
	MetricsSecure bool
	// LeaderElection elects a leader under LeaderElectionID, in LeaderElectionNamespace (the
	// operator's own namespace when empty). The lease is released when the manager stops: the
	// reconciler keeps no state a new leader needs (it rebuilds it from status).
	LeaderElection          bool
	LeaderElectionNamespace string
	// Logger is the manager's logger; controller-runtime's global one when unset.
	Logger logr.Logger
}

// New builds a manager on a copy of cfg with kpipe's scheme, health checks, and, when r is not
// nil, the KafkaPipeline reconciler registered (its Client defaults to the manager's).
func New(cfg *rest.Config, o Options, r *controllers.KafkaPipelineReconciler) (ctrl.Manager, error) {
	cfg = rest.CopyConfig(cfg)
	if o.QPS != 0 {
		cfg.QPS = o.QPS
	}
	if o.Burst != 0 {
		cfg.Burst = o.Burst
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        Scheme(),
		Logger:                        o.Logger,
		Metrics:                       metricsOptions(o),
		HealthProbeBindAddress:        orOff(o.ProbeAddr),
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck(ReadyzCheck, cachesSynced(mgr.GetCache())); err != nil {
		return nil, fmt.Errorf("add ready check: %w", err)
	}
	if r == nil {
		return mgr, nil
	}
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up the KafkaPipeline controller: %w", err)
	}
	return mgr, nil
}

func orOff(addr string) string {
	if addr == "" {
		return "0"
	}
	return addr
}
