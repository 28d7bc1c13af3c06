package storm

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kpipe-io/kpipe/runtime"
)

// envChild names the spec file of a storm child process: this test binary running
// TestStormChild.
const envChild = "KPIPE_STORM_CHILD"

// childCommand starts this test binary as one pipeline process of spec.
func childCommand(spec string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestStormChild$")
	cmd.Env = append(os.Environ(), envChild+"="+spec)
	return cmd
}

// TestStormChild runs the pipeline of the spec file named by KPIPE_STORM_CHILD as `kpipe run`
// does, until SIGTERM, with the group timers of kfakeAsKafka. It does nothing in a normal test
// run.
func TestStormChild(t *testing.T) {
	path := os.Getenv(envChild)
	if path == "" {
		t.Skip("a process of the kill storm")
	}
	spec, err := runtime.ReadSpec(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := runtime.LoadConfig(spec, runtime.SecretDirs{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := runtime.New(cfg, runtime.WithLogger(slog.New(slog.NewJSONHandler(os.Stderr, nil))),
		runtime.WithSaramaConfig(kfakeAsKafka), runtime.WithDrainTimeout(5*time.Second),
		runtime.WithShutdownTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// kfakeAsKafka sets the group timers so that kfake takes about as long as Kafka, with kpipe's
// defaults (session 10s, rebalance 30s), to remove the members a kill storm leaves behind.
// See TestKillStorm for the differences and their reproducers.
//
//   - Rebalance timeout 10s, Kafka's time to remove a member killed while it waited in
//     JoinGroup: Kafka answers the JoinGroup (to a closed connection) when the round
//     completes and removes the member one session timeout (10s) later; kfake removes it only
//     when a round's rebalance timeout runs out. The drain and shutdown timeouts go down to
//     5s so that the rebalance timeout still outlasts them (runtime/kafka.go).
//   - Session timeout 1m: kfake removes a live member whose session times out while it waits
//     in JoinGroup, Kafka keeps it. The dead members do not need a short session timeout:
//     each killed process is replaced, and its replacement's JoinGroup starts a round that
//     removes the members that did not rejoin.
func kfakeAsKafka(sc *sarama.Config) {
	sc.Consumer.Group.Session.Timeout = time.Minute
	sc.Consumer.Group.Rebalance.Timeout = 10 * time.Second
}
