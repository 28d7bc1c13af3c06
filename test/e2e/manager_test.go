package e2e

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

func get(url string) (int, string, error) {
	return getWithToken(url, "")
}

// getWithToken GETs url with the bearer token, when there is one. The manager's metrics
// certificate is self-signed: it is not verified (a Prometheus scrape does the same).
func getWithToken(url, token string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed test server
	}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// serviceAccountToken creates a ServiceAccount in ns and returns a token for it from the
// TokenRequest API; with reader, the ServiceAccount is bound to the metrics-reader ClusterRole
// of config/rbac, applied from that file.
func serviceAccountToken(name string, reader bool) string {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	Expect(h.Client.Create(ctx, sa)).To(Succeed())
	DeferCleanup(func() { Expect(h.Client.Delete(ctx, sa)).To(Succeed()) })
	if reader {
		out, err := h.Env.Kubectl(ctx, "apply", "-f", filepath.Join("config", "rbac", "metrics_reader_role.yaml"))
		Expect(err).NotTo(HaveOccurred(), out)
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "kpipe-metrics-reader"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
		}
		Expect(h.Client.Create(ctx, binding)).To(Succeed())
		DeferCleanup(func() { Expect(h.Client.Delete(ctx, binding)).To(Succeed()) })
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}
	Expect(h.Client.SubResource("token").Create(ctx, sa, tr)).To(Succeed())
	Expect(tr.Status.Token).NotTo(BeEmpty())
	return tr.Status.Token
}

// expectMetricsAuthorized checks that /metrics answers over HTTPS only to a caller allowed to
// read it: 401 without a token, 403 for a ServiceAccount without the metrics-reader role, 200
// with the reconcile metric for one bound to it; and never over plain HTTP.
func expectMetricsAuthorized(url string) {
	nobody, reader := serviceAccountToken("metrics-nobody", false), serviceAccountToken("metrics-reader", true)
	Eventually(func(g Gomega) {
		code, _, err := getWithToken(url, "")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(http.StatusUnauthorized), "no token")
		code, _, err = getWithToken(url, nobody)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(http.StatusForbidden), "a token without the metrics-reader role")
		code, body, err := getWithToken(url, reader)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(http.StatusOK), "a token of the metrics-reader role")
		g.Expect(body).To(ContainSubstring(`controller_runtime_reconcile_total{controller="kafkapipeline"`))
	}).Should(Succeed())
	code, _, err := get("http://" + strings.TrimPrefix(url, "https://"))
	Expect(err == nil && code == http.StatusOK).To(BeFalse(), "plain HTTP is not served")
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

		expectMetricsAuthorized("https://" + metrics + "/metrics")

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
