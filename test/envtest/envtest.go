// Package envtest starts a real kube-apiserver and etcd with kpipe's CRDs installed, for the
// API, controller and end-to-end suites, and runs the real kubectl against it.
//
// The binaries come from KUBEBUILDER_ASSETS, which `make test` sets from hack/envtest-assets.sh
// (that script builds them once from the Go module proxy). A test run without it fails with a
// message saying so, rather than skipping silently.
package envtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Env is a running control plane with the kpipe CRDs installed.
type Env struct {
	*envtest.Environment
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file for the control plane's admin user.
	Kubeconfig string
	// Dir is a temporary directory removed by Stop.
	Dir string
}

// RepoRoot is the repository's top directory, found from this source file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// AssetsDir is the directory holding kube-apiserver, etcd and kubectl.
func AssetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	// `make envtest` records the directory it found or built.
	if b, err := os.ReadFile(filepath.Join(RepoRoot(), "bin", ".envtest-assets")); err == nil {
		if dir := string(bytes.TrimSpace(b)); dir != "" {
			return dir, nil
		}
	}
	return "", errors.New("no envtest binaries: run `make envtest` (or `make test`), or set KUBEBUILDER_ASSETS")
}

// Start starts etcd and kube-apiserver, with the OwnerReferencesPermissionEnforcement admission
// plugin beside the defaults, and installs config/crd.
func Start() (*Env, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	// Refuse owner references that block deletion without update on the owner's finalizers,
	// as OpenShift does; the flag adds to the API server's default plugins.
	te.ControlPlane.GetAPIServer().Configure().Append("enable-admission-plugins", "OwnerReferencesPermissionEnforcement")
	cfg, err := te.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest from %s: %w", assets, err)
	}
	env := &Env{Environment: te, Config: cfg}
	if env.Dir, err = os.MkdirTemp("", "kpipe-envtest-"); err != nil {
		_ = te.Stop()
		return nil, err
	}
	user, err := te.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("add admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("render kubeconfig: %w", err)
	}
	env.Kubeconfig = filepath.Join(env.Dir, "kubeconfig")
	if err := os.WriteFile(env.Kubeconfig, kc, 0o600); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return env, nil
}

// Stop stops the control plane and removes Dir.
func (e *Env) Stop() error {
	err := e.Environment.Stop()
	if e.Dir != "" {
		err = errors.Join(err, os.RemoveAll(e.Dir))
	}
	return err
}

// Kubectl runs the version-matched kubectl next to the envtest binaries against the control
// plane, from the repository root, and returns its combined output.
func (e *Env) Kubectl(ctx context.Context, args ...string) (string, error) {
	assets, err := AssetsDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(assets, "kubectl")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("no kubectl beside the envtest binaries in %s: run `make envtest`", assets)
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	cmd.Dir = RepoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %v: %w: %s", args, err, out)
	}
	return string(out), nil
}
