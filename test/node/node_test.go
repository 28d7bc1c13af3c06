// Package node is kpipe's node suite: the operator installed with `kubectl apply -k
// config/default` on a real single-node cluster (hack/node/cluster.sh: kubelet, containerd,
// the Deployment controller, the garbage collector, kube-proxy, CoreDNS), pipeline pods running
// the image `make image` built, and Kafka (kfake) as a Deployment behind a Service. The driver
// produces and verifies from the host, through CoreDNS and the Service's cluster IP.
//
// `make test-node` builds everything, brings the cluster up, runs this suite and brings the
// cluster down. `go test ./...` skips it unless KPIPE_NODE_E2E=1 on Linux as root.
package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

const (
	operatorNS = "kpipe-system"
	kafkaNS    = "kafka"
	appNS      = "shop" // enforces Pod Security "restricted"
	image      = "ghcr.io/kpipe-io/kpipe:dev"
	partitions = 4
	// The Kafka Service's DNS name: the brokers advertise it, pods and the driver resolve it.
	bootstrap = "kafka.kafka.svc.cluster.local:9092"
)

var (
	ctx   context.Context
	k8s   client.Client
	kafka *kafkaClient
	root  string
)

// skipReason says why the suite cannot run here, or "" when it can.
func skipReason() string {
	switch {
	case os.Getenv("KPIPE_NODE_E2E") != "1":
		return "the node suite runs on a real single-node cluster: `make test-node` builds and starts one (Linux, root), then runs it with KPIPE_NODE_E2E=1"
	case runtime.GOOS != "linux":
		return "the node suite needs Linux (containerd, the kubelet, iptables)"
	case os.Geteuid() != 0:
		return "the node suite needs root (containers, mounts, iptables)"
	case os.Getenv("KUBECONFIG") == "":
		return "KUBECONFIG is not set: hack/node/e2e.sh points it at the node cluster"
	}
	return ""
}

func TestNode(t *testing.T) {
	if reason := skipReason(); reason != "" {
		t.Skip(reason)
	}
	RegisterFailHandler(Fail)
	RunSpecs(t, "node")
}

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(2 * time.Minute)
	SetDefaultEventuallyPollingInterval(500 * time.Millisecond)
	ctx = context.Background()
	var err error
	root, err = filepath.Abs("../..")
	Expect(err).NotTo(HaveOccurred())
	scheme := clientgoscheme.Scheme
	Expect(kpipev1.AddToScheme(scheme)).To(Succeed())
	cfg, err := config.GetConfig()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	By("running Kafka (kfake) as a Deployment behind the Service kafka.kafka")
	kubectlApply(kafkaManifest)
	waitAvailable(types.NamespacedName{Namespace: kafkaNS, Name: "kafka"})
	kafka = newKafkaClient(driverUser, driverPassword)
	DeferCleanup(kafka.close)
	Eventually(kafka.ping).WithTimeout(time.Minute).Should(Succeed(), "the driver reaches Kafka through CoreDNS and the Service")

	By("installing the operator with kubectl apply -k config/default")
	kubectl("apply", "--server-side", "-k", filepath.Join(root, "config", "default"))
	waitAvailable(types.NamespacedName{Namespace: operatorNS, Name: "kpipe-manager"})

	By("a namespace that enforces Pod Security \"restricted\", with the Kafka user's Secret")
	kubectlApply(appNamespaceManifest)
})

var _ = ReportAfterEach(func(r SpecReport) {
	if r.Failed() {
		dump()
	}
})

// kubectl runs the version-matched kubectl against the node cluster and returns its output.
func kubectl(args ...string) string {
	GinkgoHelper()
	out, err := kubectlErr(args...)
	Expect(err).NotTo(HaveOccurred(), "kubectl %s:\n%s", strings.Join(args, " "), out)
	return out
}

func kubectlErr(args ...string) (string, error) {
	bin := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	c, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(c, bin, args...).CombinedOutput()
	return string(out), err
}

func kubectlApply(manifest string) {
	GinkgoHelper()
	f := filepath.Join(GinkgoT().TempDir(), "manifest.yaml")
	Expect(os.WriteFile(f, []byte(manifest), 0o600)).To(Succeed())
	kubectl("apply", "-f", f)
}

func waitAvailable(key types.NamespacedName) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		var d appsv1.Deployment
		g.Expect(k8s.Get(ctx, key, &d)).To(Succeed())
		g.Expect(d.Status.AvailableReplicas).To(BeNumerically(">=", 1), "%s available", key)
		g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
	}).Should(Succeed())
}

// dump writes what a failure needs into the report: pods, events, the operator's logs.
func dump() {
	for _, args := range [][]string{
		{"get", "pods,deployments,replicasets,kafkapipelines", "-A", "-o", "wide"},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
		{"logs", "-n", operatorNS, "deployment/kpipe-manager", "--tail=80"},
		{"logs", "-n", appNS, "-l", "app.kubernetes.io/name=kpipe-pipeline", "--tail=20", "--prefix"},
		{"logs", "-n", kafkaNS, "deployment/kafka", "--tail=20"},
	} {
		out, _ := kubectlErr(args...)
		AddReportEntry(fmt.Sprintf("kubectl %s", strings.Join(args, " ")), out)
	}
}

// One ordered sequence: the specs share the cluster, and the Helm chart replaces the
// kustomize install at the end.
var _ = Describe("kpipe on a real node", Ordered, func() {
	installSpecs()
	autoscaleSpecs()
	manualSpecs()
	operatorSpecs()
	metricsSpecs()
	helmSpecs()
})
