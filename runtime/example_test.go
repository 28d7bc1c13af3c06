package runtime_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe-io/kpipe/runtime"
)

// shout is a Handler: it prints each message's value in capitals.
type shout struct {
	done chan struct{}
	n    int
}

func (s *shout) Handle(_ context.Context, m *runtime.Message) error {
	fmt.Printf("%s: %s\n", m.Key, strings.ToUpper(string(m.Value)))
	if s.n++; s.n == 3 {
		close(s.done)
	}
	return nil
}

// Example runs a pipeline with a Go handler against an in-process Kafka cluster. In a custom
// image, register the handler with runtime.Register and run runtime.NewCommand instead (see
// ExampleRegister); the operator then configures the pipeline through KPIPE_PIPELINE_SPEC.
func Example() {
	cluster, _ := kfake.NewCluster(kfake.SeedTopics(1, "orders"))
	defer cluster.Close()
	producer, _ := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	defer producer.Close()
	for _, v := range []string{"one", "two", "three"} {
		producer.ProduceSync(context.Background(), &kgo.Record{Topic: "orders", Key: []byte("k"), Value: []byte(v)})
	}

	// The KafkaPipeline spec, as the operator renders it into KPIPE_PIPELINE_SPEC.
	spec := fmt.Sprintf(`{
		"kafka": {"bootstrapServers": [%q]},
		"topics": ["orders"],
		"group": "shouter",
		"initialOffset": "Earliest",
		"pool": {"size": 4, "ordering": "Partition"},
		"processor": {"handler": {"name": "shout"}}
	}`, cluster.ListenAddrs()[0])
	cfg, err := runtime.LoadConfig([]byte(spec), runtime.SecretDirs{})
	if err != nil {
		fmt.Println(err)
		return
	}
	h := &shout{done: make(chan struct{})}
	p, err := runtime.New(cfg, runtime.WithHandler(h),
		runtime.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- p.Run(ctx) }()
	select {
	case <-h.done:
	case <-time.After(time.Minute):
	}
	cancel()
	fmt.Println("stopped:", <-stopped)
	// Output:
	// k: ONE
	// k: TWO
	// k: THREE
	// stopped: <nil>
}

// ExampleRegister is the main of a custom image: it registers a handler under the name a
// KafkaPipeline's spec.processor.handler.name refers to, and runs the `run` command, which
// the pods start as "<image> run".
func ExampleRegister() {
	runtime.Register("shout", runtime.HandlerFunc(func(_ context.Context, m *runtime.Message) error {
		if len(m.Value) == 0 {
			return runtime.Permanent(fmt.Errorf("empty message at offset %d", m.Offset)) // dead-letter it
		}
		fmt.Println(strings.ToUpper(string(m.Value)))
		return nil
	}))
	root := &cobra.Command{Use: "shouter"}
	root.AddCommand(runtime.NewCommand()) // run, with --config, --http-address, --shutdown-timeout
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
