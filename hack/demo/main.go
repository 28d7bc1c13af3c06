// Command demo runs kpipe's whole loop on one machine: an embedded Kafka, a local control
// plane, the operator, and every pipeline replica as a `kpipe run` process. It applies a
// KafkaPipeline with kubectl, drives a burst, steady traffic and silence, shows the pipeline
// once a second, and ends with a summary checked against the output topic.
//
//	go run ./hack/demo [-keep-running] [-burst 120000] [-rate 2000] [-steady 20s]
//
// `make demo` builds what it needs first.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/test/harness"
)

//go:embed pipeline.yaml
var pipelineYAML string

const (
	partitions = 12
	input      = "orders"
	output     = "orders-enriched"
	group      = "orders-enricher"
)

var pipelineKey = types.NamespacedName{Namespace: "demo", Name: "orders-enricher"}

type options struct {
	burst       int
	rate        int
	steady      time.Duration
	quietMax    time.Duration
	keepRunning bool
	binary      string
	logFile     string
}

func main() {
	var o options
	flag.IntVar(&o.burst, "burst", 120_000, "messages produced at once at the start")
	flag.IntVar(&o.rate, "rate", 2000, "messages per second during the steady phase")
	flag.DurationVar(&o.steady, "steady", 20*time.Second, "length of the steady phase")
	flag.DurationVar(&o.quietMax, "silence", 2*time.Minute, "longest wait, in silence, for the pipeline to drain and scale to zero")
	flag.BoolVar(&o.keepRunning, "keep-running", false, "keep everything running after the summary, until Ctrl-C")
	flag.StringVar(&o.binary, "kpipe", "", "kpipe binary the replicas run (built when empty)")
	flag.StringVar(&o.logFile, "log", "", "file for the operator's logs (default: in the work directory)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	say("starting an embedded Kafka (%d partitions per topic), a control plane and the operator", partitions)
	logs, err := openLog(o.logFile)
	if err != nil {
		return err
	}
	defer func() { _ = logs.Close() }()
	ctrl.SetLogger(zap.New(zap.WriteTo(logs)))
	h, err := harness.Start(ctx, harness.Options{
		Partitions: partitions,
		Topics:     []string{input, output, "orders-dlq"},
		Binary:     o.binary,
		Log:        logs,
	})
	if err != nil {
		return err
	}
	defer func() {
		say("stopping: the replicas get SIGTERM and drain")
		if err := h.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stop:", err)
		}
	}()
	say("control plane ready. In another terminal:")
	fmt.Printf("\n    export KUBECONFIG=%s\n    %s get kp -n demo -w\n\n", h.Env.Kubeconfig, kubectlPath(h))
	say("operator logs: %s", logs.Name())

	if err := applyPipeline(ctx, h); err != nil {
		return err
	}
	s, err := newScenario(h, o)
	if err != nil {
		return err
	}
	defer s.close()
	sum, err := s.run(ctx)
	if err != nil {
		return err
	}
	sum.print()
	if sum.lost > 0 {
		return fmt.Errorf("%d messages lost", sum.lost)
	}
	if o.keepRunning {
		say("still running; Ctrl-C to stop")
		<-ctx.Done()
	}
	return nil
}

func applyPipeline(ctx context.Context, h *harness.Harness) error {
	if err := h.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}); err != nil {
		return err
	}
	manifest := filepath.Join(h.WorkDir, "pipeline.yaml")
	if err := os.WriteFile(manifest, []byte(strings.ReplaceAll(pipelineYAML, "BOOTSTRAP", h.Kafka.Addrs[0])), 0o600); err != nil {
		return err
	}
	out, err := h.Env.Kubectl(ctx, "apply", "-f", manifest)
	if err != nil {
		return err
	}
	say("kubectl apply: %s", strings.TrimSpace(out))
	return nil
}

func kubectlPath(h *harness.Harness) string {
	return filepath.Join(h.Env.BinaryAssetsDirectory, "kubectl")
}

func openLog(path string) (*os.File, error) {
	if path == "" {
		f, err := os.CreateTemp("", "kpipe-demo-*.log")
		return f, err
	}
	return os.Create(path)
}

func say(format string, args ...any) {
	fmt.Printf("%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// pipelineStatus reads the pipeline as `kubectl get kp` would.
func pipelineStatus(ctx context.Context, c client.Client) (*kpipev1.KafkaPipeline, error) {
	var kp kpipev1.KafkaPipeline
	err := c.Get(ctx, pipelineKey, &kp)
	return &kp, err
}

func conditions(kp *kpipev1.KafkaPipeline) string {
	var parts []string
	for _, t := range []string{kpipev1.ConditionReady, kpipev1.ConditionIdle, kpipev1.ConditionStalled} {
		for _, c := range kp.Status.Conditions {
			if c.Type == t {
				parts = append(parts, fmt.Sprintf("%s=%s(%s)", t, c.Status, c.Reason))
			}
		}
	}
	return strings.Join(parts, " ")
}

var errNotDrained = errors.New("the pipeline did not drain and scale to zero in time")

// producer writes keyed, numbered messages and counts what the broker acknowledged.
type producer struct {
	cl   *kgo.Client
	next int
}

func newProducer(addrs []string) (*producer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(1<<16))
	if err != nil {
		return nil, err
	}
	return &producer{cl: cl}, nil
}

// produce writes n messages and waits for their acks.
func (p *producer) produce(ctx context.Context, n int) error {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		id := p.next + i
		recs[i] = &kgo.Record{Topic: input, Key: fmt.Appendf(nil, "customer-%04d", id%5000), Value: fmt.Appendf(nil, "order-%09d", id)}
	}
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return err
	}
	p.next += n
	return nil
}
