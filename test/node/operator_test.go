package node

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kpipe-io/kpipe/controllers/manager"
)

func leaseHolder(g Gomega) string {
	var l coordinationv1.Lease
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: operatorNS, Name: manager.LeaderElectionID}, &l)).To(Succeed())
	g.Expect(l.Spec.HolderIdentity).NotTo(BeNil())
	return *l.Spec.HolderIdentity
}

func managerPods(g Gomega) []corev1.Pod {
	var list corev1.PodList
	g.Expect(k8s.List(ctx, &list, client.InNamespace(operatorNS),
		client.MatchingLabels{"app.kubernetes.io/component": "manager"})).To(Succeed())
	return list.Items
}

func operatorSpecs() bool {
	return Describe("the operator's pod killed", Ordered, func() {
		BeforeAll(func() {
			kubectlApply(pipelineManifest("rollme", "rollme", "  scaling: {mode: Manual}\n  replicas: 1\n"))
			Eventually(func(g Gomega) { readyPods(g, "rollme", 1) }).Should(Succeed())
			Expect(kafka.produce("rollme", 0, 1000)).To(Succeed())
			expectDrained("rollme", "rollme", 1000)
		})

		It("regains leadership in a new pod, and the pipelines are unaffected", func() {
			pipelinePods := pods(Default, "rollme")
			old := managerPods(Default)
			Expect(old).To(HaveLen(1))
			Expect(leaseHolder(Default)).To(HavePrefix(old[0].Name), "the manager's pod holds the lease")

			kubectl("delete", "pod", "-n", operatorNS, old[0].Name, "--grace-period=0", "--force")
			wait := traffic("rollme", 1000, 5000)
			Eventually(func(g Gomega) {
				ps := managerPods(g)
				g.Expect(ps).To(HaveLen(1))
				g.Expect(ps[0].Name).NotTo(Equal(old[0].Name))
				g.Expect(leaseHolder(g)).To(HavePrefix(ps[0].Name), "the new pod is the leader")
			}).Should(Succeed())
			Expect(wait()).To(Succeed())
			expectDrained("rollme", "rollme", 5000)

			after := pods(Default, "rollme")
			Expect(after).To(HaveLen(1))
			Expect(after[0].UID).To(Equal(pipelinePods[0].UID), "the pipeline's pod was not replaced")
			Expect(after[0].Status.ContainerStatuses[0].RestartCount).To(Equal(pipelinePods[0].Status.ContainerStatuses[0].RestartCount))
		})
	})
}

// scrape GETs the manager pod's /metrics over HTTPS (its certificate is self-signed) with an
// optional bearer token and returns the status code and body.
func scrape(g Gomega, token string) (int, string) {
	ps := managerPods(g)
	g.Expect(ps).To(HaveLen(1))
	g.Expect(ps[0].Status.PodIP).NotTo(BeEmpty())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+net.JoinHostPort(ps[0].Status.PodIP, "8443")+"/metrics", nil)
	g.Expect(err).NotTo(HaveOccurred())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the manager's certificate is self-signed
	}}
	resp, err := cl.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, string(body)
}

// The operator's metrics are served over HTTPS to callers whose token may get /metrics.
func metricsSpecs() bool {
	return Describe("the operator's metrics", Ordered, func() {
		BeforeAll(func() {
			kubectl("create", "serviceaccount", "scraper", "-n", operatorNS)
			kubectl("create", "serviceaccount", "stranger", "-n", operatorNS)
			kubectl("create", "clusterrolebinding", "kpipe-node-scraper", "--clusterrole=kpipe-metrics-reader",
				"--serviceaccount="+operatorNS+":scraper")
		})

		It("answer 401 without a token, 403 to a caller without kpipe-metrics-reader, 200 to one bound to it", func() {
			token := func(sa string) string {
				return strings.TrimSpace(kubectl("create", "token", sa, "-n", operatorNS, "--duration=10m"))
			}
			scraper, stranger := token("scraper"), token("stranger")
			Eventually(func(g Gomega) {
				code, _ := scrape(g, "")
				g.Expect(code).To(Equal(http.StatusUnauthorized), "without a token")
				code, _ = scrape(g, stranger)
				g.Expect(code).To(Equal(http.StatusForbidden), "a token not bound to kpipe-metrics-reader")
				code, body := scrape(g, scraper)
				g.Expect(code).To(Equal(http.StatusOK), "a token bound to kpipe-metrics-reader")
				g.Expect(body).To(ContainSubstring("controller_runtime_reconcile_total"))
			}).Should(Succeed())
		})
	})
}

// helm runs the helm built into bin/node by hack/node/assets.sh.
func helm(args ...string) string {
	GinkgoHelper()
	bin := filepath.Join(os.Getenv("KPIPE_NODE_BIN"), "helm")
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "helm %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// objects are the kind/name pairs of rendered manifests.
func objects(yaml string) []string {
	var out []string
	for doc := range strings.SplitSeq(yaml, "\n---") {
		var kind, name string
		inMeta := false
		for line := range strings.SplitSeq(doc, "\n") {
			switch {
			case strings.HasPrefix(line, "kind: "):
				kind = strings.TrimPrefix(line, "kind: ")
			case strings.HasPrefix(line, "metadata:"):
				inMeta = true
			case inMeta && strings.HasPrefix(line, "  name: ") && name == "":
				name = strings.TrimPrefix(line, "  name: ")
			}
		}
		if kind != "" && kind != "Namespace" {
			out = append(out, kind+"/"+name)
		}
	}
	slices.Sort(out)
	return out
}

func helmSpecs() bool {
	return Describe("the Helm chart", Ordered, func() {
		chart := func() string { return filepath.Join(root, "charts", "kpipe") }

		It("lints, and renders the objects of config/default", func() {
			helm("lint", chart(), "--strict")
			rendered := helm("template", "kpipe", chart(), "-n", operatorNS, "--include-crds")
			kustomized := kubectl("kustomize", filepath.Join(root, "config", "default"))
			Expect(objects(rendered)).To(Equal(objects(kustomized)))
			helm("lint", chart(), "--strict", "--set", "podMonitor.enabled=true,networkPolicy.enabled=true,podDisruptionBudget.enabled=true")
		})

		It("installs on the node in place of config/default, and runs a pipeline", func() {
			kubectl("delete", "-k", filepath.Join(root, "config", "default"), "--wait=true", "--timeout=2m")
			helm("install", "kpipe", chart(), "-n", operatorNS, "--create-namespace", "--wait", "--timeout", "2m",
				"--set", "networkPolicy.enabled=true,podDisruptionBudget.enabled=true")
			Expect(managerImage(Default)).To(Equal(image))
			kubectlApply(pipelineManifest("charted", "charted", "  scaling: {mode: Manual}\n  replicas: 1\n"))
			Expect(kafka.produce("charted", 0, 2000)).To(Succeed())
			expectDrained("charted", "charted", 2000)
		})
	})
}
