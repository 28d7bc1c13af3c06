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
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

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

func stopAll(ps []*process) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { ; p.terminate() })
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
	r.wg.Go(func() {
		r.supervise(p, args, env, logPath)
	})
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
			_ = logf.Close()
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
		_ = logf.Close()
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
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
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
	defer func() { _ = l.Close() }()
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
