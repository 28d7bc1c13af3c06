package memory

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
)

// memoryCgroup is a memory cgroup made for the test, v1 or v2.
type memoryCgroup struct {
	dir string
	v2  bool
	oom int64 // OOM kills before the test
}

// newMemoryCgroup makes a memory cgroup with the given limit, v2 when the unified hierarchy
// is mounted at /sys/fs/cgroup, else v1.
func newMemoryCgroup(limit int64) (*memoryCgroup, error) {
	if goruntime.GOOS != "linux" || os.Geteuid() != 0 {
		return nil, errors.New("not root on Linux")
	}
	name := fmt.Sprintf("kpipe-memtest-%d", os.Getpid())
	cg := &memoryCgroup{dir: "/sys/fs/cgroup/memory/" + name}
	limitFile := "memory.limit_in_bytes"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cg = &memoryCgroup{dir: "/sys/fs/cgroup/" + name, v2: true}
		limitFile = "memory.max"
	}
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cg.dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0o600); err != nil {
		cg.remove()
		return nil, err
	}
	if !cg.v2 {
		// No swap: the limit is the memory the process can have.
		_ = os.WriteFile(filepath.Join(cg.dir, "memory.memsw.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0o600)
	}
	cg.oom = cg.oomKills()
	return cg, nil
}

func (cg *memoryCgroup) procsFile() string { return filepath.Join(cg.dir, "cgroup.procs") }

// peak is the cgroup's highest memory usage so far (v1; on v2 memory.peak where the kernel
// has it, else the current usage).
func (cg *memoryCgroup) peak() int64 {
	for _, f := range []string{"memory.max_usage_in_bytes", "memory.peak", "memory.current"} {
		if b, err := os.ReadFile(filepath.Join(cg.dir, f)); err == nil {
			v, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			return v
		}
	}
	return 0
}

// oomKills counts the processes the OOM killer killed in the cgroup since it was made.
func (cg *memoryCgroup) oomKills() int64 {
	file := "memory.oom_control"
	if cg.v2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(cg.dir, file))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n - cg.oom
		}
	}
	return 0
}

func (cg *memoryCgroup) remove() { _ = os.Remove(cg.dir) }
