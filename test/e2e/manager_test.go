package e2e

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// `kpipe manager` as a user runs it against a cluster: probes, metrics, leader election, and
// a clean exit on SIGTERM that hands the lease back.
var _ = Describe("kpipe manager", func() {
	It("serves health probes and metrics, holds the leader lease, and exits cleanly on SIGTERM", func() {
		metrics, probes := freeAddr(), freeAddr()
		cmd := exec.Command(h.Binary, "manager",
			"--metrics-bind-address", metrics, "--health-probe-bind-address", probes,
			"--leader-election-namespace", ns, "--pipeline-image", "ghcr.io/kpipe-io/kpipe:e2e")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+h.Env.Kubeconfig)
		logPath := filepath.Join(h.WorkDir, "manager.log")
		logf, err := os.Create(logPath)
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = logf.Close() }()
		cmd.Stdout, cmd.Stderr = logf, logf
		Expect(cmd.Start()).To(Succeed())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		DeferCleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
			}
		})

		Eventually(func(g Gomega) {
			for _, path := range []string{"/healthz", "/readyz"} {
				code, _, err := get("http://" + probes + path)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(code).To(Equal(http.StatusOK), path)
			}
		}).Should(Succeed())

		var lease coordinationv1.Lease
		Eventually(func(g Gomega) {
			g.Expect(h.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kpipe-manager.kpipe.io"}, &lease)).To(Succeed())
			g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
			g.Expect(*lease.Spec.HolderIdentity).NotTo(BeEmpty())
		}).Should(Succeed())

		Eventually(func(g Gomega) {
			code, body, err := get("http://" + metrics + "/metrics")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(code).To(Equal(http.StatusOK))
			g.Expect(body).To(ContainSubstring(`controller_runtime_reconcile_total{controller="kafkapipeline"`))
		}).Should(Succeed())

		Expect(cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
		Eventually(exited).WithTimeout(30*time.Second).Should(Receive(BeNil()), "exit status 0 after SIGTERM")

		Expect(h.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kpipe-manager.kpipe.io"}, &lease)).To(Succeed())
		Expect(lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "").To(BeTrue(), "the lease was released")
	})

	It("refuses to start without a pipeline image, saying so", func() {
		cmd := exec.Command(h.Binary, "manager", "--leader-elect=false")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+h.Env.Kubeconfig, "KPIPE_IMAGE=")
		out, err := cmd.CombinedOutput()
		Expect(err).To(HaveOccurred())
		Expect(string(out)).To(ContainSubstring("--pipeline-image (or KPIPE_IMAGE) is required"))
	})
})
