// Package harness runs the whole kpipe loop on one machine: an embedded Kafka (kfake), a
// control plane (envtest's kube-apiserver and etcd) with the CRDs, the operator, and a local
// runner that plays the kubelet by running each replica as a `kpipe run` process.
//
// `make demo` (hack/demo) and the end-to-end suite (test/e2e) are both built on it.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kpipe-io/kpipe/controllers"
	"github.com/kpipe-io/kpipe/controllers/lag"
	"github.com/kpipe-io/kpipe/controllers/manager"
	"github.com/kpipe-io/kpipe/test/envtest"
	"github.com/kpipe-io/kpipe/test/kafkatest"
	"github.com/kpipe-io/kpipe/test/kubelet"
)

// Options configure a Harness.
type Options struct {
	// Brokers is the number of kfake brokers. Default 1.
	Brokers int
	// Partitions is the partition count of every topic in Topics.
	Partitions int32
	// Topics are created at start.
	Topics []string
	// Binary is the kpipe executable the runner starts; built into WorkDir when empty.
	Binary string
	// Log receives the operator's and runner's logs; discarded when nil.
	Log io.Writer
}

// Harness is a running Kafka, control plane, operator and local runner.
type Harness struct {
	Env        *envtest.Env
	Kafka      *kafkatest.Cluster
	Client     client.Client
	Runner     *kubelet.Runner
	Reconciler *controllers.KafkaPipelineReconciler
	// Binary is the kpipe executable the replicas run.
	Binary string
	// WorkDir holds the binary, the replicas' logs and materialised Secret volumes.
	WorkDir string

	cancel context.CancelFunc
	done   chan error
}

// Start brings everything up; Stop tears it down. A failure part-way stops what started.
func Start(ctx context.Context, o Options) (h *Harness, err error) {
	if o.Brokers == 0 {
		o.Brokers = 1
	}
	h = &Harness{}
	defer func() {
		if err != nil {
			_ = h.Stop()
		}
	}()
	if h.WorkDir, err = os.MkdirTemp("", "kpipe-harness-"); err != nil {
		return nil, err
	}
	h.Binary = o.Binary
	if h.Binary == "" {
		h.Binary = filepath.Join(h.WorkDir, "kpipe")
		if err := BuildKpipe(ctx, h.Binary); err != nil {
			return nil, err
		}
	}
	if h.Kafka, err = kafkatest.Start(o.Brokers, o.Partitions, o.Topics...); err != nil {
		return nil, err
	}
	if h.Env, err = envtest.Start(); err != nil {
		return nil, err
	}
	if h.Client, err = client.New(h.Env.Config, client.Options{Scheme: manager.Scheme()}); err != nil {
		return nil, err
	}
	return h, h.startManager(logger(o.Log))
}

// startManager runs the operator's reconciler and the local runner in one manager.
func (h *Harness) startManager(log logr.Logger) error {
	h.Reconciler = &controllers.KafkaPipelineReconciler{
		Image:      "ghcr.io/kpipe-io/kpipe:local",
		Lag:        lag.NewReader(lag.Options{Timeout: 5 * time.Second}),
		MaxBackoff: 5 * time.Second,
	}
	mgr, err := manager.New(h.Env.Config, manager.Options{QPS: 100, Burst: 200, Logger: log}, h.Reconciler)
	if err != nil {
		return err
	}
	h.Runner = &kubelet.Runner{Client: mgr.GetClient(), Binary: h.Binary, WorkDir: filepath.Join(h.WorkDir, "pods")}
	if err := h.Runner.SetupWithManager(mgr); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- mgr.Start(ctx) }()
	return nil
}

// Stop stops the replicas (SIGTERM), the operator, the control plane and Kafka.
func (h *Harness) Stop() error {
	var errs []error
	if h.cancel != nil {
		h.cancel()
		errs = append(errs, <-h.done)
		h.cancel = nil
	}
	if h.Env != nil {
		errs = append(errs, h.Env.Stop())
		h.Env = nil
	}
	if h.Kafka != nil {
		h.Kafka.Close()
		h.Kafka = nil
	}
	if h.WorkDir != "" && os.Getenv("KPIPE_KEEP_WORKDIR") == "" {
		errs = append(errs, os.RemoveAll(h.WorkDir))
	}
	return errors.Join(errs...)
}

// BuildKpipe builds the kpipe binary of this repository to out.
func BuildKpipe(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	cmd.Dir = envtest.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build kpipe: %w: %s", err, b)
	}
	return nil
}

func logger(w io.Writer) logr.Logger {
	if w == nil {
		return logr.Discard()
	}
	return funcr.New(func(prefix, args string) {
		_, _ = fmt.Fprintln(w, time.Now().Format("15:04:05.000"), prefix, args)
	}, funcr.Options{})
}
