package runtime

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// A custom handler image, built as a binary of its own (testdata/olderhandler), runs the pod
// environment the operator renders with fields added to the spec that its runtime does not
// know, as after an operator upgrade: it consumes every message and reports the fields. With a
// required contract above its own, it exits 1 with the refusal. Skipped in -short: it builds.
func TestOlderHandlerBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a handler binary")
	}
	g := NewWithT(t)
	bin := filepath.Join(t.TempDir(), "olderhandler")
	build := exec.Command("go", "build", "-o", bin, "./testdata/olderhandler")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)

	tc := newTestCluster(t, map[string]int32{"in": 2})
	tc.produce(input{topic: "in", n: 30, keys: 6, partitions: 2}, 0, 30)
	env := renderedEnv(t, tc.addrs, "older-handler")
	env[kpipev1.EnvPipelineSpec] = withNewerFields(t, env[kpipev1.EnvPipelineSpec])
	addr := freeAddr(t)
	env[kpipev1.EnvHTTPAddr] = addr

	var logs bytes.Buffer
	cmd := exec.Command(bin, "run", "--shutdown-timeout=5s")
	cmd.Env = envList(env)
	cmd.Stderr = &logs
	g.Expect(cmd.Start()).To(Succeed())
	defer func() { _ = cmd.Process.Kill() }()
	g.Eventually(func(g Gomega) {
		resp, err := http.Get("http://" + addr + "/metrics")
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		g.Expect(string(body)).To(ContainSubstring(`kpipe_messages_processed_total{namespace="shop",pipeline="orders",result="ok"} 30`))
		g.Expect(string(body)).To(ContainSubstring(`kpipe_spec_unknown_fields{field="tracing",namespace="shop",pipeline="orders"} 1`))
	}).WithTimeout(time.Minute).WithPolling(200*time.Millisecond).Should(Succeed(), "%s", &logs)
	g.Expect(cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
	g.Expect(cmd.Wait()).To(Succeed(), "%s", &logs)

	env[kpipev1.EnvPodContract] = strconv.Itoa(kpipev1.PodContractVersion + 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	refused := exec.CommandContext(ctx, bin, "run")
	refused.Env = envList(env)
	out, err = refused.CombinedOutput()
	g.Expect(err).To(HaveOccurred())
	g.Expect(refused.ProcessState.ExitCode()).To(Equal(1))
	g.Expect(string(out)).To(ContainSubstring("requires pod contract " + env[kpipev1.EnvPodContract]))
}

func envList(env map[string]string) []string {
	out := []string{"HOME=" + os.TempDir()}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}
