package storm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kpipe-io/kpipe/test/harness"
)

// kpipeBinary builds the kpipe binary once per test binary, or takes the one named by
// KPIPE_STORM_BIN (to measure another build in the same session, e.g. before a change).
var kpipeBinary = sync.OnceValues(func() (string, error) {
	if bin := os.Getenv("KPIPE_STORM_BIN"); bin != "" {
		return bin, nil
	}
	dir, err := os.MkdirTemp("", "kpipe-storm-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "kpipe")
	return bin, harness.BuildKpipe(context.Background(), bin)
})

// replicas runs `kpipe run` processes of one spec, as the pods of a Deployment: each slot
// restarts its process when it dies, like a kubelet with restartPolicy Always.
type replicas struct {
	t       testing.TB
	command func(spec string) *exec.Cmd // one process of the spec at that path
	spec    string                      // path of the spec JSON
	logDir  string
	restart time.Duration

	mu     sync.Mutex
	slots  map[int]*slot
	starts int
	died   map[int]time.Time // when each process that ended (by pid) did
}

type slot struct {
	cmd     *exec.Cmd
	stopped bool          // scaled down: no restart
	done    chan struct{} // closed when the slot's supervisor returns
}

// newReplicas runs `kpipe run` processes.
func newReplicas(t testing.TB, spec map[string]any) *replicas {
	t.Helper()
	bin, err := kpipeBinary()
	if err != nil {
		t.Fatal(err)
	}
	return newReplicasOf(t, spec, func(spec string) *exec.Cmd {
		return exec.Command(bin, "run", "--config", spec, "--http-address", "127.0.0.1:0")
	})
}

// newReplicasOf runs the processes command makes.
func newReplicasOf(t testing.TB, spec map[string]any, command func(spec string) *exec.Cmd) *replicas {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r := &replicas{t: t, command: command, spec: path, logDir: dir, restart: 500 * time.Millisecond,
		slots: map[int]*slot{}, died: map[int]time.Time{}}
	t.Cleanup(r.stopAll)
	return r
}

// scaleTo starts or gracefully stops (SIGTERM) slots so that slots 0..n-1 run.
func (r *replicas) scaleTo(n int) {
	r.mu.Lock()
	var stopping []*slot
	for i, s := range r.slots {
		if i >= n && !s.stopped {
			s.stopped = true
			if s.cmd != nil && s.cmd.Process != nil {
				_ = s.cmd.Process.Signal(syscall.SIGTERM)
			}
			stopping = append(stopping, s)
		}
	}
	for i := range n {
		if _, ok := r.slots[i]; !ok {
			s := &slot{done: make(chan struct{})}
			r.slots[i] = s
			go r.supervise(i, s)
		}
	}
	r.mu.Unlock()
	for _, s := range stopping {
		<-s.done
	}
	r.mu.Lock()
	for i, s := range r.slots {
		if s.stopped {
			delete(r.slots, i)
		}
	}
	r.mu.Unlock()
}

// supervise runs the slot's process until the slot is stopped, restarting it when it dies.
func (r *replicas) supervise(i int, s *slot) {
	defer close(s.done)
	for {
		r.mu.Lock()
		if s.stopped {
			r.mu.Unlock()
			return
		}
		r.starts++
		n := r.starts
		cmd := r.command(r.spec)
		logFile, err := os.Create(filepath.Join(r.logDir, fmt.Sprintf("replica-%d-start-%d.log", i, n)))
		if err != nil {
			r.mu.Unlock()
			r.t.Errorf("replica log: %v", err)
			return
		}
		cmd.Stdout, cmd.Stderr = logFile, logFile
		err = cmd.Start()
		s.cmd = cmd
		r.mu.Unlock()
		if err != nil {
			r.t.Errorf("start kpipe run: %v", err)
			return
		}
		_ = cmd.Wait()
		r.mu.Lock()
		r.died[cmd.Process.Pid] = time.Now()
		r.mu.Unlock()
		_ = logFile.Close()
		time.Sleep(r.restart)
	}
}

// kill sends SIGKILL to the running process of slot i, and reports whether there was one;
// the slot's supervisor starts another.
func (r *replicas) kill(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.slots[i]
	if s == nil || s.cmd == nil || s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return false
	}
	return s.cmd.Process.Signal(syscall.SIGKILL) == nil
}

// stopAll stops every slot gracefully.
func (r *replicas) stopAll() { r.scaleTo(0) }

// diedBefore reports whether the process pid ended before t.
func (r *replicas) diedBefore(pid int, t time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.died[pid]
	return ok && at.Before(t)
}

// logs returns the log files of the processes, for a failing test's report.
func (r *replicas) logs() []string {
	m, _ := filepath.Glob(filepath.Join(r.logDir, "replica-*.log"))
	return m
}
