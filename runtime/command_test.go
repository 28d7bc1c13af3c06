package runtime

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

func TestRunCommandRefusesBadConfigurationBeforeConnecting(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  string
		args []string
		want []string
	}{
		{name: "no configuration", want: []string{kpipev1.EnvPipelineSpec, "--config"}},
		{name: "missing config file", args: []string{"--config", "/nonexistent/spec.json"}, want: []string{"--config", "no such file"}},
		{name: "invalid spec", env: `{"topics":["in"],"group":"g","processor":{"forward":{"topic":"out"}}}`,
			want: []string{"invalid pipeline configuration", "spec.kafka.bootstrapServers: Required value"}},
		{name: "unknown handler", env: `{"kafka":{"bootstrapServers":["kafka:9092"]},"topics":["in"],"group":"g",` +
			`"processor":{"handler":{"name":"nope"}},"template":{"image":"x"}}`,
			want: []string{`no handler is registered under "nope"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(kpipev1.EnvPipelineSpec, tt.env)
			cmd := NewCommand()
			cmd.SetArgs(append(tt.args, "--http-address", freeAddr(t)))
			cmd.SetErr(io.Discard)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := cmd.ExecuteContext(ctx)
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestRunCommand runs `kpipe run` with its configuration in a file and the pod's env vars,
// serves /healthz, /readyz and /metrics, and exits cleanly on SIGTERM.
func TestRunCommand(t *testing.T) {
	g := NewWithT(t)
	tc := newTestCluster(t, map[string]int32{"in": 2, "out": 2})
	tc.produce(input{topic: "in", n: 100, keys: 10, partitions: 2}, 0, 100)
	path := filepath.Join(t.TempDir(), "spec.json")
	g.Expect(os.WriteFile(path, specJSON(t, tc.baseSpec("cmd")), 0o600)).To(Succeed())
	t.Setenv(kpipev1.EnvPipelineName, "orders")
	t.Setenv(kpipev1.EnvPipelineNamespace, "shop")
	addr := freeAddr(t)
	t.Setenv(kpipev1.EnvHTTPAddr, addr)

	var logs bytes.Buffer
	cmd := NewCommand()
	cmd.SetArgs([]string{"--config", path, "--shutdown-timeout", "5s"})
	cmd.SetErr(&logs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	get := func(g Gomega, path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	g.Eventually(func(g Gomega) {
		code, _ := get(g, "/readyz")
		g.Expect(code).To(Equal(http.StatusOK))
		code, body := get(g, "/metrics")
		g.Expect(code).To(Equal(http.StatusOK))
		g.Expect(body).To(ContainSubstring(`kpipe_messages_processed_total{namespace="shop",pipeline="orders",result="ok"} 100`))
		g.Expect(body).To(ContainSubstring(`kpipe_committed_offset{namespace="shop",partition="0",pipeline="orders",topic="in"} 50`))
	}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
	code, _ := get(g, "/healthz")
	g.Expect(code).To(Equal(http.StatusOK))

	// The pod's SIGTERM: the command is listening for it (it serves /readyz), so the test
	// process survives it.
	g.Expect(syscall.Kill(os.Getpid(), syscall.SIGTERM)).To(Succeed())
	g.Eventually(done).WithTimeout(30 * time.Second).Should(Receive(BeNil()))
	cancel()
	g.Expect(logs.String()).To(ContainSubstring(`"pipeline":"orders"`))
}
