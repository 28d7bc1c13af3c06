// Command kpipe is the kpipe operator and its pipeline runtime in one binary.
//
//	kpipe manager   the operator: reconciles KafkaPipelines into Deployments, scales them on lag
//	kpipe run       the pipeline runtime inside a pipeline's pod
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers"
	"github.com/kpipe-io/kpipe/controllers/manager"
	kpiperuntime "github.com/kpipe-io/kpipe/runtime"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kpipe:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "kpipe",
		Short:         "Run Kafka consumer pipelines on Kubernetes and scale them on lag",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newManagerCommand(), newRunCommand())
	return root
}

type managerOptions struct {
	metricsAddr   string
	metricsSecure bool
	probeAddr     string
	leaderElect   bool
	leaderElectNS string
	image         string
	qps           float32
	burst         int
	namespaces    []string
	secretOptIn   bool
	upgrades      int
	zap           zap.Options
}

func newManagerCommand() *cobra.Command {
	o := managerOptions{zap: zap.Options{Development: false}}
	cmd := &cobra.Command{
		Use:   "manager",
		Short: "Run the operator",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return runManager(o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "address of the Prometheus /metrics endpoint; 0 turns it off")
	f.BoolVar(&o.metricsSecure, "metrics-secure", true,
		"serve /metrics over HTTPS to callers with a token allowed to get /metrics; false serves plain HTTP (local runs only)")
	f.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	f.BoolVar(&o.leaderElect, "leader-elect", true, "elect a leader, so only one operator replica reconciles at a time")
	f.StringVar(&o.leaderElectNS, "leader-election-namespace", "", "namespace of the leader-election lease (default: the operator's own)")
	f.StringVar(&o.image, "pipeline-image", os.Getenv("KPIPE_IMAGE"), "image the pipeline pods run by default (env KPIPE_IMAGE)")
	f.Float32Var(&o.qps, "kube-api-qps", 50, "queries per second to the Kubernetes API (each poll may apply a Deployment and patch a status)")
	f.IntVar(&o.burst, "kube-api-burst", 100, "burst of queries to the Kubernetes API")
	f.StringSliceVar(&o.namespaces, "watch-namespaces", nil, "comma-separated namespaces whose pipelines the operator reconciles (default: all)")
	f.BoolVar(&o.secretOptIn, "secret-opt-in", false,
		"use, and let pipeline pods mount, only Secrets labelled "+kpipev1.SecretOptInLabel+"="+kpipev1.SecretOptInValue)
	f.IntVar(&o.upgrades, "max-concurrent-upgrades", controllers.DefaultMaxConcurrentUpgrades,
		"pipelines whose pods roll at once because this operator renders their pod template differently from the one before it "+
			"(an operator upgrade); the next start as these finish. Spec and Secret changes roll at once; 0 means no limit")
	zapFlags := flag.NewFlagSet("zap", flag.ContinueOnError)
	o.zap.BindFlags(zapFlags)
	f.AddGoFlagSet(zapFlags)
	return cmd
}

func runManager(o managerOptions) error {
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	if o.image == "" {
		return errors.New("--pipeline-image (or KPIPE_IMAGE) is required: the image pipeline pods run")
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	mgr, err := manager.New(cfg, manager.Options{
		QPS: o.qps, Burst: o.burst,
		MetricsAddr: o.metricsAddr, MetricsSecure: o.metricsSecure, ProbeAddr: o.probeAddr,
		LeaderElection: o.leaderElect, LeaderElectionNamespace: o.leaderElectNS,
		WatchNamespaces: o.namespaces,
	}, &controllers.KafkaPipelineReconciler{Image: o.image, SecretOptIn: o.secretOptIn, MaxConcurrentUpgrades: upgradeLimit(o.upgrades)})
	if err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}

// upgradeLimit is the reconciler's MaxConcurrentUpgrades for the flag: 0 (no limit) is
// negative there, where 0 means the default.
func upgradeLimit(flagValue int) int {
	if flagValue <= 0 {
		return -1
	}
	return flagValue
}

func newRunCommand() *cobra.Command {
	return kpiperuntime.NewCommand()
}
