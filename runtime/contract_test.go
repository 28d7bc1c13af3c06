package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/render"
)

func TestCheckContract(t *testing.T) {
	newer := strconv.Itoa(kpipev1.PodContractVersion + 1)
	for _, tt := range []struct {
		required string
		want     []string // substrings of the error; none: accepted
	}{
		{required: ""},
		{required: "1"},
		{required: strconv.Itoa(kpipev1.PodContractVersion)},
		{required: newer, want: []string{kpipev1.ContractRefusalPrefix, "requires pod contract " + newer,
			"implements pod contract " + strconv.Itoa(kpipev1.PodContractVersion), kpipev1.EnvPodContract}},
		{required: "two", want: []string{kpipev1.EnvPodContract, `"two"`, "positive integer"}},
		{required: "0", want: []string{"positive integer"}},
	} {
		err := CheckContract(tt.required)
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("CheckContract(%q) = %v, want nil", tt.required, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("CheckContract(%q) = nil, want an error", tt.required)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("CheckContract(%q) = %q, want it to mention %q", tt.required, err, w)
			}
		}
	}
	if ce, ok := errors.AsType[*ContractError](CheckContract(newer)); !ok || ce.Required != kpipev1.PodContractVersion+1 {
		t.Errorf("want a *ContractError, got %v", CheckContract(newer))
	}
}

// The refusal lands where the kubelet reads a termination message; outside a pod, where the
// file does not exist, nothing is created.
func TestWriteTerminationMessage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "termination-log")
	if err := os.WriteFile(path, []byte("an older, longer message"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeTerminationMessage(path, "refused")
	if b, _ := os.ReadFile(path); string(b) != "refused" {
		t.Errorf("termination message %q", b)
	}
	missing := filepath.Join(dir, "absent")
	writeTerminationMessage(missing, "refused")
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("created %s: %v", missing, err)
	}
}

// renderedEnv is the pipeline container's environment as the operator of this module renders
// it for a handler pipeline reading topic "in" of the given cluster.
func renderedEnv(t *testing.T, addrs []string, handler string) map[string]string {
	t.Helper()
	kp := &kpipev1.KafkaPipeline{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"},
		Spec: kpipev1.KafkaPipelineSpec{
			Kafka:         kpipev1.KafkaConnection{BootstrapServers: addrs},
			Topics:        []string{"in"},
			Group:         "older-handler",
			InitialOffset: kpipev1.InitialOffsetEarliest,
			Processor:     kpipev1.ProcessorSpec{Handler: &kpipev1.HandlerProcessor{Name: handler}},
			Template:      &kpipev1.PodTemplateOverrides{Image: "registry.example/orders-handler:1.0"},
		},
	}
	dep, err := render.Deployment(render.Input{Pipeline: kp, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	return env
}

// withNewerFields adds to a rendered spec the fields a newer operator might render: one at the
// top, one nested in a known object.
func withNewerFields(t *testing.T, specJSON string) string {
	t.Helper()
	var spec map[string]any
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		t.Fatal(err)
	}
	spec["tracing"] = map[string]any{"sampleRatio": "0.1"}
	spec["processor"].(map[string]any)["handler"].(map[string]any)["timeout"] = "5s"
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A custom handler image built against this runtime keeps running when a newer operator
// renders a spec with fields it does not know: it consumes, names the fields once in its log,
// and exports them as kpipe_spec_unknown_fields.
func TestOlderHandlerRunsUnderNewerOperatorSpec(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 2})
	tc.produce(input{topic: "in", n: 40, keys: 8, partitions: 2}, 0, 40)
	var handled atomic.Int64
	Register("older-handler-count", HandlerFunc(func(context.Context, *Message) error { handled.Add(1); return nil }))

	env := renderedEnv(t, tc.addrs, "older-handler-count")
	g.Expect(env).To(HaveKeyWithValue(kpipev1.EnvPodContract, "1"))
	env[kpipev1.EnvPipelineSpec] = withNewerFields(t, env[kpipev1.EnvPipelineSpec])
	addr := freeAddr(t)
	env[kpipev1.EnvHTTPAddr] = addr
	for k, v := range env {
		t.Setenv(k, v)
	}

	var logs bytes.Buffer
	cmd := NewCommand()
	cmd.SetArgs([]string{"--shutdown-timeout", "5s"})
	cmd.SetErr(&logs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	g.Eventually(func(g Gomega) {
		g.Expect(handled.Load()).To(BeNumerically(">=", 40))
		resp, err := http.Get("http://" + addr + "/metrics")
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		g.Expect(string(body)).To(ContainSubstring(`kpipe_spec_unknown_fields{field="processor.handler.timeout",namespace="shop",pipeline="orders"} 1`))
		g.Expect(string(body)).To(ContainSubstring(`kpipe_spec_unknown_fields{field="tracing",namespace="shop",pipeline="orders"} 1`))
		g.Expect(string(body)).To(ContainSubstring(`kpipe_pod_contract_version{namespace="shop",pipeline="orders"} ` + strconv.Itoa(kpipev1.PodContractVersion)))
	}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
	cancel()
	g.Eventually(done).WithTimeout(30 * time.Second).Should(Receive(BeNil()))
	g.Expect(strings.Count(logs.String(), "does not know")).To(Equal(1), "logged once: %s", logs.String())
	g.Expect(logs.String()).To(ContainSubstring(`"fields":["processor.handler.timeout","tracing"]`))
}

// A pod whose required contract is above the runtime's refuses to start, naming both
// versions, before it connects anywhere or serves /readyz.
func TestRunCommandRefusesNewerContract(t *testing.T) {
	env := renderedEnv(t, []string{"127.0.0.1:1"}, "older-handler-refused")
	addr := freeAddr(t)
	env[kpipev1.EnvHTTPAddr] = addr
	env[kpipev1.EnvPodContract] = strconv.Itoa(kpipev1.PodContractVersion + 1)
	for k, v := range env {
		t.Setenv(k, v)
	}
	cmd := NewCommand()
	cmd.SetArgs(nil)
	cmd.SetErr(io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	if _, ok := errors.AsType[*ContractError](err); !ok {
		t.Fatalf("want a *ContractError, got %v", err)
	}
	for _, w := range []string{"requires pod contract " + env[kpipev1.EnvPodContract], "implements pod contract " + strconv.Itoa(kpipev1.PodContractVersion)} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q does not mention %q", err, w)
		}
	}
	if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
		_ = resp.Body.Close()
		t.Error("/readyz served by a runtime that refused to start")
	}
}
