// Package manager is the one way kpipe builds its scheme and a controller-runtime manager:
// `kpipe manager`, the envtest suites, the benchmarks and the harness all go through it.
package manager

import (
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
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
	// WatchNamespaces limits the cache (KafkaPipelines, Deployments, Secret metadata) to these
	// namespaces; all namespaces when empty. Pipelines elsewhere are not reconciled.
	WatchNamespaces []string
	// SkipNameValidation lets a test run a second manager in one process: controller names
	// are otherwise unique per process.
	SkipNameValidation bool
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
		// managedFields are dropped from cached objects: nothing reads them (server-side apply
		// works on the API server), and they were the larger part of each cached Deployment at
		// 10 000 pipelines.
		Cache: cache.Options{DefaultNamespaces: namespaces(o.WatchNamespaces), DefaultTransform: cache.TransformStripManagedFields()},
		// Secrets are read on demand and never cached: the cache holds their metadata only
		// (the controller's metadata watch), not the data of every Secret it can see.
		Client:     client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Controller: config.Controller{SkipNameValidation: &o.SkipNameValidation},
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

// namespaces is the cache's DefaultNamespaces for a list of names; nil (all) when empty.
func namespaces(names []string) map[string]cache.Config {
	if len(names) == 0 {
		return nil
	}
	m := make(map[string]cache.Config, len(names))
	for _, n := range names {
		m[n] = cache.Config{}
	}
	return m
}

func orOff(addr string) string {
	if addr == "" {
		return "0"
	}
	return addr
}
