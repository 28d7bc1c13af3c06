// Package memory runs `kpipe run` in a memory cgroup of 512 MiB against a backlog larger
// than the limit, in an in-process kfake cluster, and checks that it drains without being
// OOM-killed, loses nothing, and stays within its budget plus the documented overhead.
//
// It needs root on Linux (to make a memory cgroup) and skips otherwise, and in -short mode.
// KPIPE_MEMTEST_MIB sets the backlog (default 512; the case is 750),
// KPIPE_MEMTEST_BUFFER the pool's buffer (default: the API's).
//
//	go test ./test/memory -v -count=1
//	KPIPE_MEMTEST_MIB=750 go test ./test/memory -v -count=1
//
// The backlog is written with the Kafka client's default compression (snappy), and its
// values, a 26-letter pattern, compress about 15:1: the 12 MiB sarama fetches at once decode
// to about 180 MiB, which the runtime's accounting of decoded fetches has to absorb
// (runtime/decoded.go).
package memory

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	partitions = 12
	msgSize    = 256 << 10
	limit      = 512 << 20
	budget     = limit / 2 // the runtime's share of its cgroup limit
	// liveOverhead is what the process may hold live besides the budget (docs/runtime.md):
	// goroutine stacks, connection buffers, the produce requests being encoded, sarama's
	// and the runtime's own structures.
	liveOverhead = 96 << 20
	// rssBound is the bound of the resident set: GOMEMLIMIT (85% of the limit: the live data
	// and the garbage between collections) and 48 MiB for the binary, memory the runtime has
	// not returned yet and memory outside the Go heap.
	rssBound = limit*85/100 + 48<<20
)

func TestLargeBacklogInMemoryCgroup(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the 512 MiB backlog test takes about a minute")
	}
	cg, err := newMemoryCgroup(limit)
	if err != nil {
		t.Skipf("cannot make a memory cgroup of 512 MiB (needs root on Linux with a memory controller): %v", err)
	}
	t.Cleanup(cg.remove)
	mib := 512
	if v := os.Getenv("KPIPE_MEMTEST_MIB"); v != "" {
		if mib, err = strconv.Atoi(v); err != nil {
			t.Fatalf("KPIPE_MEMTEST_MIB: %v", err)
		}
	}
	n := mib << 20 / msgSize

	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "in", "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	addrs := kc.ListenAddrs()
	produceBacklog(t, addrs, n)
	goruntime.GC()

	bin := buildKpipe(t)
	began := time.Now()
	proc := startInCgroup(t, bin, cg, addrs)
	peak := watch(t, proc, cg, addrs, n)
	drained := time.Since(began)
	stopProcess(t, proc)

	lost, dups := checkOutput(t, addrs, n)
	live := proc.maxLiveHeap(t)
	t.Logf("backlog %d MiB (%d messages of 256 KiB, %d partitions); cgroup limit 512 MiB, budget %d MiB", mib, n, partitions, budget>>20)
	t.Logf("drained in %s; peak live heap %d MiB (bound: budget + %d MiB); peak RSS %d MiB (bound %d MiB), cgroup peak %d MiB; OOM kills %d; lost %d, duplicates %d",
		drained.Round(100*time.Millisecond), live>>20, liveOverhead>>20, peak.rss>>20, rssBound>>20, peak.cgroup>>20, cg.oomKills(), lost, dups)
	if k := cg.oomKills(); k > 0 {
		t.Errorf("OOM-killed %d times", k)
	}
	if lost > 0 {
		t.Errorf("%d of %d messages lost", lost, n)
	}
	if live > budget+liveOverhead {
		t.Errorf("peak live heap %d MiB above the budget and its overhead (%d MiB)", live>>20, (budget+liveOverhead)>>20)
	}
	if peak.rss > rssBound {
		t.Errorf("peak RSS %d MiB above GOMEMLIMIT and the binary (%d MiB)", peak.rss>>20, rssBound>>20)
	}
}

// produceBacklog writes n messages of 256 KiB, round robin over the partitions; header seq
// is the message's number.
func produceBacklog(t *testing.T, addrs []string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(64))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	value := make([]byte, msgSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed error
	)
	for i := range n {
		wg.Add(1)
		r := &kgo.Record{Topic: "in", Partition: int32(i % partitions), Key: []byte("k" + strconv.Itoa(i)), Value: value,
			Headers: []kgo.RecordHeader{{Key: "seq", Value: []byte(strconv.Itoa(i))}}}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed != nil {
		t.Fatalf("produce backlog: %v", failed)
	}
}

func buildKpipe(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kpipe")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startInCgroup starts `kpipe run` forwarding "in" to "out", already in the cgroup when it
// starts: a shell moves itself into the cgroup and execs kpipe.
func startInCgroup(t *testing.T, bin string, cg *memoryCgroup, addrs []string) *process {
	t.Helper()
	spec, err := json.Marshal(map[string]any{
		"kafka":         map[string]any{"bootstrapServers": addrs},
		"topics":        []string{"in"},
		"group":         "memtest",
		"initialOffset": "Earliest",
		"processor":     map[string]any{"forward": map[string]any{"topic": "out"}},
		"pool":          poolSpec(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", `echo $$ > "$1" && exec "$2" run --http-address 127.0.0.1:0`, "sh", cg.procsFile(), bin)
	// gctrace reports the live heap after each collection: what the process holds.
	cmd.Env = append(os.Environ(), "KPIPE_PIPELINE_SPEC="+string(spec), "GODEBUG=gctrace=1")
	log, err := os.Create(filepath.Join(t.TempDir(), "kpipe.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exited: make(chan error, 1), log: log.Name()}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("kpipe run log (tail):\n%s", tail(string(b), 4000))
		}
	})
	return p
}

// poolSpec is the pipeline's pool: the defaults, or a buffer of KPIPE_MEMTEST_BUFFER messages.
func poolSpec(t *testing.T) map[string]any {
	p := map[string]any{}
	if v := os.Getenv("KPIPE_MEMTEST_BUFFER"); v != "" {
		b, err := strconv.Atoi(v)
		if err != nil || b <= 0 {
			t.Fatalf("KPIPE_MEMTEST_BUFFER=%q: a positive number of messages is required", v)
		}
		p["buffer"] = b
	}
	return p
}

// process is a started kpipe run; exited receives the result of its Wait.
type process struct {
	cmd    *exec.Cmd
	exited chan error
	log    string // its stdout and stderr
}

// maxLiveHeap is the largest live heap the process's gctrace reported ("A->B->C MB": C is
// the heap marked live).
func (p *process) maxLiveHeap(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	var most int64
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, "gc ") {
			continue
		}
		_, sizes, ok := strings.Cut(line, " ms cpu, ")
		if !ok {
			continue
		}
		sizes, _, _ = strings.Cut(sizes, " MB")
		parts := strings.Split(sizes, "->")
		if live, err := strconv.ParseInt(parts[len(parts)-1], 10, 64); err == nil {
			most = max(most, live<<20)
		}
	}
	return most
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

type peaks struct{ rss, cgroup int64 }

// watch samples the process's memory until the group committed the end of the input (or
// the process died, or 5 minutes passed) and returns the peaks.
func watch(t *testing.T, proc *process, cg *memoryCgroup, addrs []string, n int) peaks {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var p peaks
	deadline := time.Now().Add(5 * time.Minute)
	for last := time.Now(); time.Now().Before(deadline); {
		select {
		case err := <-proc.exited:
			t.Fatalf("kpipe run exited before draining the backlog: %v (OOM kills: %d)", err, cg.oomKills())
		case <-time.After(100 * time.Millisecond):
		}
		p.rss = max(p.rss, vmHWM(proc.cmd.Process.Pid))
		p.cgroup = max(p.cgroup, cg.peak())
		if time.Since(last) < time.Second {
			continue
		}
		last = time.Now()
		if done := committed(t, adm); done >= int64(n) {
			return p
		}
	}
	t.Fatalf("the backlog was not drained in 5 minutes (OOM kills: %d)", cg.oomKills())
	return p
}

func committed(t *testing.T, adm *kadm.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, "memtest")
	if err != nil {
		return 0
	}
	var sum int64
	for p := range int32(partitions) {
		if o, ok := offs.Lookup("in", p); ok {
			sum += o.At
		}
	}
	return sum
}

func stopProcess(t *testing.T, proc *process) {
	t.Helper()
	_ = proc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-proc.exited:
		if err != nil {
			t.Errorf("kpipe run after SIGTERM: %v", err)
		}
	case <-time.After(40 * time.Second):
		_ = proc.cmd.Process.Kill()
		t.Error("kpipe run did not stop after SIGTERM")
	}
}

// checkOutput reads the output topic and counts the input messages missing from it and
// the duplicates.
func checkOutput(t *testing.T, addrs []string, n int) (lost, dups int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics("out"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := make([]int, n)
	distinct := 0
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for distinct < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key != "seq" {
					continue
				}
				i, err := strconv.Atoi(string(h.Value))
				if err != nil || i < 0 || i >= n || len(r.Value) != msgSize {
					t.Errorf("unexpected output record: seq %q, %d bytes", h.Value, len(r.Value))
					continue
				}
				if seen[i] == 0 {
					distinct++
				} else {
					dups++
				}
				seen[i]++
			}
		})
	}
	return n - distinct, dups
}

// vmHWM is the process's peak resident set size, 0 when it cannot be read.
func vmHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
