package storm

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
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
// does, until SIGTERM, with kfakeAsKafka's session timeout. It does nothing in a normal test
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
		runtime.WithSaramaConfig(kfakeAsKafka))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// kfakeAsKafka keeps kpipe's group timers but the session timeout, 30s instead of 10s: kfake
// removes a live member whose session times out while it waits in JoinGroup, Kafka keeps it
// (see TestKillStorm). The dead members' sessions are timed by the test instead
// (expireDead). The client ID names the process, for expireDead.
func kfakeAsKafka(sc *sarama.Config) {
	sc.Consumer.Group.Session.Timeout = 30 * time.Second
	sc.ClientID = clientIDOf(os.Getpid())
}

// childClientPrefix and the pid are the client ID of a storm child.
const childClientPrefix = "kpipe-storm-"

func clientIDOf(pid int) string { return childClientPrefix + strconv.Itoa(pid) }
