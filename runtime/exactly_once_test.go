package runtime

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// exactlyOnceSpec is baseSpec with ExactlyOnce delivery, reading committed records.
func (tc *testCluster) exactlyOnceSpec(group string) map[string]any {
	spec := tc.baseSpec(group)
	spec["processor"] = map[string]any{"forward": map[string]any{"topic": "out", "delivery": "ExactlyOnce"}}
	spec["kafka"] = map[string]any{"bootstrapServers": tc.addrs, "isolationLevel": "ReadCommitted", "rebalanceStrategy": "Range"}
	return spec
}

// readCommitted reads topic from the start with isolation level read_committed until want
// distinct values were seen and then nothing more came for a second (or the timeout passed).
func (tc *testCluster) readCommitted(topic string, want int, timeout time.Duration) []outRecord {
	tc.t.Helper()
	cl := tc.reader(topic, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []outRecord
	seen := map[int]bool{}
	quietSince := time.Now()
	for ctx.Err() == nil && (len(seen) < want || time.Since(quietSince) < time.Second) {
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fs := cl.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			rec := tc.outRecordOf(r)
			out = append(out, rec)
			seen[rec.value] = true
			quietSince = time.Now()
		})
	}
	return out
}

// produceSlowly writes the input in chunks, one every pause, in the background; the returned
// function waits for the last one.
func produceSlowly(tc *testCluster, in input, chunk int, pause time.Duration) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for from := 0; from < in.n; from += chunk {
			tc.produce(in, from, min(from+chunk, in.n))
			time.Sleep(pause)
		}
	})
	return wg.Wait
}

// TestExactlyOnceForward forwards with ExactlyOnce, through two rebalances: a read-committed
// reader of the output sees every input once, and the group's offsets reach the end.
func TestExactlyOnceForward(t *testing.T) {
	g := NewWithT(t)
	const n = 20_000
	tc := newTestCluster(t, map[string]int32{"in": 6, "out": 6})
	in := input{topic: "in", n: n, keys: 600, partitions: 6}
	wait := produceSlowly(tc, in, 200, 50*time.Millisecond) // over about 5 s
	spec := specJSON(t, tc.exactlyOnceSpec("eos"))
	a := start(t, spec, WithInstance("a"))
	g.Eventually(func() int64 { return tc.countOutput("out") }).WithTimeout(time.Minute).Should(BeNumerically(">=", n/8))
	b := start(t, spec, WithInstance("b"))
	g.Eventually(func() float64 { return testutil.ToFloat64(b.p.metrics.consumed.WithLabelValues("in")) }).WithTimeout(time.Minute).Should(BeNumerically(">", 0))
	b.stop(t)
	wait()
	tc.expectCommittedAtEnd(g, "eos", "in")
	a.stop(t)
	out := tc.readCommitted("out", n, time.Minute)
	g.Expect(checkAllPresent(t, out, n)).To(BeZero(), "duplicates on the output")
}

// TestExactlyOnceRefusesWeakConfig: a configuration changed by WithSaramaConfig that loses
// what ExactlyOnce needs is refused, naming it.
func TestExactlyOnceRefusesWeakConfig(t *testing.T) {
	tc := newTestCluster(t, map[string]int32{"in": 1, "out": 1})
	for _, tt := range []struct {
		name string
		hook func(*sarama.Config)
		want string
	}{
		{"read uncommitted", func(sc *sarama.Config) { sc.Consumer.IsolationLevel = sarama.ReadUncommitted },
			"ExactlyOnce needs Consumer.IsolationLevel ReadCommitted"},
		{"five requests in flight", func(sc *sarama.Config) { sc.Net.MaxOpenRequests = 5 },
			"Net.MaxOpenRequests to be 1"},
		{"not idempotent", func(sc *sarama.Config) { sc.Producer.Idempotent = false },
			"Idempotent"},
		{"acks from the leader only", func(sc *sarama.Config) { sc.Producer.RequiredAcks = sarama.WaitForLocal },
			"RequiredAcks"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig(specJSON(t, tc.exactlyOnceSpec("eos")), SecretDirs{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = New(cfg, WithSaramaConfig(tt.hook))
			NewWithT(t).Expect(err).To(MatchError(ContainSubstring(tt.want)))
		})
	}
}

// The kill storm: three `run` processes forward a stream while one of them is SIGKILLed and
// restarted every 1.5 to 3.5 s. The processes are this test binary running
// TestKillStormChild, which runs the pipeline of KPIPE_PIPELINE_SPEC like the run command,
// with the tests' short group timers.

const (
	envStormChild    = "KPIPE_TEST_STORM_CHILD"
	envStormInstance = "KPIPE_TEST_STORM_INSTANCE"
)

// TestKillStormChild is the pipeline process of the kill storm; it does nothing in a normal
// test run.
func TestKillStormChild(t *testing.T) {
	if os.Getenv(envStormChild) == "" {
		t.Skip("run by the kill storm tests")
	}
	spec, err := ReadSpec("")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(spec, SecretDirs{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, WithCommitInterval(200*time.Millisecond), WithSaramaConfig(stormGroup),
		WithInstance(os.Getenv(envStormInstance)), WithShutdownTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// stormGroup is fastGroup with a session timeout and a read timeout that outlast kfake's
// longest rebalance round in the storm. Two differences from Kafka would otherwise stall the
// partitions of a member that survives the kills for about a minute (no duplicates, nothing
// lost; it was mistaken for a transaction timeout, and kfake logged no transaction aborted at
// its timeout):
//
//   - kfake restarts a round's deadline (the rebalance timeout, 15s here) at every JoinGroup;
//     Kafka ends the round at the rebalance timeout from its start. A replacement joining
//     every 1.5 to 3.5s keeps a kfake round open for 30s and more.
//   - kfake keeps a member's session timer running while the member waits in JoinGroup, and
//     when it fires removes the member without answering its JoinGroup. Kafka keeps a known
//     member that waits in JoinGroup alive (and answers UNKNOWN_MEMBER_ID if it removes one).
//     The member reads for Net.ReadTimeout (35s here), joins again and waits for another
//     round: about 57s in the run that showed it.
//
// Minimal reproducer (kfake, session timeout 6s, rebalance timeout 15s): A and B are in a
// stable group; C joins, which starts a round; A sends JoinGroup at once; B keeps sending
// heartbeats (answered REBALANCE_IN_PROGRESS) and sends JoinGroup after 10s. kfake removes A
// 6s after its last heartbeat; the round completes at 10s with B and C, and A's JoinGroup is
// never answered (sent again, it gets UNKNOWN_MEMBER_ID). Kafka answers it at 10s, with A in
// the new generation.
//
// Dead members do not need the short session timeout: every killed process is replaced, its
// replacement's JoinGroup starts a round, and a round removes the members that did not join it.
func stormGroup(sc *sarama.Config) {
	fastGroup(sc)
	sc.Consumer.Group.Session.Timeout = time.Minute
	sc.Net.ReadTimeout = 2 * time.Minute
}

// stormProcess is one pipeline process of the kill storm.
type stormProcess struct {
	cmd  *exec.Cmd
	name string
}

func startStormProcess(t *testing.T, spec []byte, name string, logs string) *stormProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillStormChild$")
	cmd.Env = append(os.Environ(), envStormChild+"=1", envStormInstance+"="+name, "KPIPE_PIPELINE_SPEC="+string(spec))
	f, err := os.OpenFile(filepath.Join(logs, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); _ = f.Close() }()
	return &stormProcess{cmd: cmd, name: name}
}

func (p *stormProcess) kill()      { _ = p.cmd.Process.Signal(syscall.SIGKILL) }
func (p *stormProcess) terminate() { _ = p.cmd.Process.Signal(syscall.SIGTERM) }

// killStorm runs the storm and returns the duplicates a read-committed reader of the output
// saw. Every input value must be there; the caller judges the duplicates.
func killStorm(t *testing.T, exactlyOnce bool) (dups int) {
	g := NewWithT(t)
	const (
		n     = 30_000
		kills = 8
	)
	logs := t.TempDir()
	// kfake's warnings (a transaction aborted at its timeout, among others) go with the
	// processes' logs.
	kf, err := os.Create(filepath.Join(logs, "kfake.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kf.Close() })
	tc := newTestCluster(t, map[string]int32{"in": 6, "out": 6}, kfake.WithLogger(kfake.BasicLogger(kf, kfake.LogLevelWarn)))
	const group = "storm"
	spec := tc.baseSpec(group)
	if exactlyOnce {
		spec = tc.exactlyOnceSpec(group)
	}
	in := input{topic: "in", n: n, keys: 600, partitions: 6}
	// The input arrives over about 20 s, all through the storm.
	produced := produceSlowly(tc, in, 200, 130*time.Millisecond)
	js := specJSON(t, spec)
	procs := make([]*stormProcess, 3)
	for i := range procs {
		procs[i] = startStormProcess(t, js, fmt.Sprintf("w%d", i), logs)
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.kill()
		}
		if t.Failed() {
			dumpLogs(t, logs)
		}
	})
	g.Eventually(func() int64 { return tc.countOutput("out") }).WithTimeout(time.Minute).Should(BeNumerically(">", 0))
	for range kills {
		time.Sleep(time.Duration(1500+rand.N(2000)) * time.Millisecond)
		i := rand.N(len(procs))
		procs[i].kill()
		time.Sleep(200 * time.Millisecond)
		// The same instance name again: a container restarted in its pod.
		procs[i] = startStormProcess(t, js, procs[i].name, logs)
	}
	produced()
	// The group settles after the last kill (a killed member leaves when the round its
	// replacement started ends, see stormGroup); on a loaded machine that can take more than
	// expectCommittedAtEnd's minute.
	end := tc.endOffsets("in")
	g.Eventually(func() map[int32]int64 { return tc.committed(group, "in", 6) }).
		WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Equal(end))
	tc.expectCommittedAtEnd(g, group, "in")
	for _, p := range procs {
		p.terminate()
	}
	out := tc.readCommitted("out", n, 2*time.Minute)
	t.Logf("%d kills; the processes logged %d consumer group sessions, %d sessions ended with an error and %d aborted transactions",
		kills, countInLogs(t, logs, "consumer group session started"), countInLogs(t, logs, "session ended with an error"),
		countInLogs(t, logs, "transaction aborted"))
	return checkAllPresent(t, out, n)
}

// countInLogs counts the lines of the processes' logs holding s.
func countInLogs(t *testing.T, dir, s string) int {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n += strings.Count(string(b), s)
	}
	return n
}

func dumpLogs(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if len(b) > 30000 {
			b = b[len(b)-30000:]
		}
		t.Logf("%s:\n%s", filepath.Base(f), b)
	}
}

// TestKillStormExactlyOnce: under ExactlyOnce, a read-committed reader of the output sees
// every input exactly once, however often the processes were killed.
func TestKillStormExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("kill storm")
	}
	dups := killStorm(t, true)
	t.Logf("ExactlyOnce kill storm: %d duplicates", dups)
	NewWithT(t).Expect(dups).To(BeZero(), "duplicates under ExactlyOnce")
}

// TestKillStormAtLeastOnce is the same storm under AtLeastOnce, for comparison: nothing is
// lost, and the duplicates are reported.
func TestKillStormAtLeastOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("kill storm")
	}
	dups := killStorm(t, false)
	t.Logf("AtLeastOnce kill storm: %d duplicates", dups)
}

// TestExactlyOnceProduceFaults: writes the broker refuses abort their transactions; the
// messages are consumed again from the committed offsets and nothing reaches a read-committed
// reader twice. A message refused more often than retry.maxAttempts goes to the dead-letter
// topic in a transaction of its own.
func TestExactlyOnceProduceFaults(t *testing.T) {
	g := NewWithT(t)
	const n = 10_000
	tc := newTestCluster(t, map[string]int32{"in": 6, "out": 6, "dlq": 1})
	in := input{topic: "in", n: n, keys: 600, partitions: 6}
	wait := produceSlowly(tc, in, 200, 50*time.Millisecond)
	spec := tc.exactlyOnceSpec("eos-faults")
	spec["deadLetter"] = map[string]any{"topic": "dlq"}
	r := start(t, specJSON(t, spec), WithInstance("a"))
	g.Eventually(func() int64 { return tc.countOutput("out") }).WithTimeout(time.Minute).Should(BeNumerically(">=", n/10))
	// The output refuses every write until messages went to the dead-letter topic (after
	// three aborted transactions each).
	faults := tc.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "out", Err: kerr.TopicAuthorizationFailed, Count: -1})
	g.Eventually(func() float64 { return testutil.ToFloat64(r.p.metrics.deadLettered) }).
		WithTimeout(time.Minute).Should(BeNumerically(">", 0), "nothing was dead-lettered")
	faults.Remove()
	g.Expect(testutil.ToFloat64(r.p.metrics.transactions.WithLabelValues("aborted"))).To(BeNumerically(">=", 3))
	wait()
	tc.expectCommittedAtEnd(g, "eos-faults", "in")
	r.stop(t)
	// Everything is written: read until nothing more comes. (kpipe_dead_lettered_total counts
	// the writes of aborted transactions too.)
	dead := tc.readCommitted("dlq", 0, 10*time.Second)
	out := tc.readCommitted("out", n-len(dead), time.Minute)
	out = append(out, dead...)
	g.Expect(checkAllPresent(t, out, n)).To(BeZero(), "duplicates on the output and dead-letter topics")
	t.Logf("aborted transactions: %.0f; dead letters: %d",
		testutil.ToFloat64(r.p.metrics.transactions.WithLabelValues("aborted")), len(dead))
}
