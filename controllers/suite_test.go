package controllers_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers"
	"github.com/kpipe-io/kpipe/controllers/lag"
	"github.com/kpipe-io/kpipe/controllers/manager"
	"github.com/kpipe-io/kpipe/test/envtest"
	"github.com/kpipe-io/kpipe/test/kafkatest"
	"github.com/kpipe-io/kpipe/test/kubelet"
)

const testImage = "ghcr.io/kpipe-io/kpipe:test"

var (
	env        *envtest.Env
	k8s        client.Client
	kc         *kafkatest.Cluster
	reconciler *controllers.KafkaPipelineReconciler
	kube       *kubelet.Runner
	stopMgr    context.CancelFunc
	mgrDone    chan struct{}
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "controllers")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	SetDefaultEventuallyTimeout(60 * time.Second)
	SetDefaultEventuallyPollingInterval(200 * time.Millisecond)

	var err error
	env, err = envtest.Start()
	Expect(err).NotTo(HaveOccurred())

	scheme := manager.Scheme()
	k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	kc, err = kafkatest.Start(3, 4, "orders", "payments")
	Expect(err).NotTo(HaveOccurred())

	// The manager runs as the operator's service account with exactly the RBAC of config/rbac,
	// so a missing permission fails the suite.
	mgrConfig := installRBAC(env, k8s, scheme)

	// A real manager, with leader election as `kpipe manager` runs it by default.
	reconciler = &controllers.KafkaPipelineReconciler{
		Image:      testImage,
		Lag:        lag.NewReader(lag.Options{Timeout: 5 * time.Second}),
		StallPolls: 10,
		MaxBackoff: 5 * time.Second,
		// The specs assert lag values soon after producing: every lag change is written (the
		// default rule is tested in statuswrite_test.go).
		StatusLag: controllers.StatusLagWrites{Share: 1e-9, MinInterval: time.Millisecond, PerSecond: 1000},
	}
	mgr, err := manager.New(mgrConfig, manager.Options{
		QPS: 100, Burst: 200, // `kpipe manager` sets these with flags
		LeaderElection: true, LeaderElectionNamespace: "kpipe-system",
	}, reconciler)
	Expect(err).NotTo(HaveOccurred())

	// envtest has no kubelet or Deployment controller: the local runner plays both, reporting
	// every Deployment's wanted replicas as ready. It writes Deployment status, which the
	// operator may not, so it runs in a manager of its own as the admin.
	kubeMgr, err := manager.New(env.Config, manager.Options{QPS: 100, Burst: 200}, nil)
	Expect(err).NotTo(HaveOccurred())
	kube = &kubelet.Runner{Client: kubeMgr.GetClient(), StatusOnly: true, ReadyInterval: 200 * time.Millisecond}
	Expect(kube.SetupWithManager(kubeMgr)).To(Succeed())

	ctx, cancel := context.WithCancel(context.Background())
	stopMgr = cancel
	mgrDone = make(chan struct{})
	kubeDone := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(kubeDone)
		Expect(kubeMgr.Start(ctx)).To(Succeed())
	}()
	go func() {
		defer GinkgoRecover()
		defer close(mgrDone)
		defer func() { <-kubeDone }()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	if stopMgr != nil {
		stopMgr()
		Eventually(mgrDone).Should(BeClosed())
	}
	if kc != nil {
		kc.Close()
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// installRBAC applies config/rbac to a control plane through its admin client c and returns a
// client configuration that authenticates as the operator's service account.
func installRBAC(e *envtest.Env, c client.Client, scheme *runtime.Scheme) *rest.Config {
	ctx := context.Background()
	Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kpipe-system"}})).To(Succeed())
	decoder := serializer.NewCodecFactory(scheme).UniversalDeserializer()
	for _, f := range []string{"service_account.yaml", "role.yaml", "role_binding.yaml", "leader_election_role.yaml"} {
		data, err := os.ReadFile(filepath.Join(envtest.RepoRoot(), "config", "rbac", f))
		Expect(err).NotTo(HaveOccurred())
		for doc := range strings.SplitSeq(string(data), "\n---") {
			if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---")) == "" {
				continue
			}
			obj, _, err := decoder.Decode([]byte(doc), nil, nil)
			Expect(err).NotTo(HaveOccurred(), "%s", f)
			Expect(c.Create(ctx, obj.(client.Object))).To(Succeed(), "%s", f)
		}
	}
	user, err := e.AddUser(ctrlenvtest.User{Name: "system:serviceaccount:kpipe-system:kpipe-manager", Groups: []string{"system:serviceaccounts", "system:authenticated"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	return user.Config()
}

// Helpers shared by the specs.

var nsCounter int

func newNamespace() string {
	nsCounter++
	name := fmt.Sprintf("kp-%d-%d", nsCounter, time.Now().UnixNano()%100000)
	Expect(k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	return name
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// newPipeline is a pipeline on the shared kfake cluster with short test windows.
func newPipeline(ns, name string, topics []string, mut ...func(*kpipev1.KafkaPipeline)) *kpipev1.KafkaPipeline {
	kp := &kpipev1.KafkaPipeline{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: kpipev1.KafkaPipelineSpec{
			Kafka:     kpipev1.KafkaConnection{BootstrapServers: kc.Addrs},
			Topics:    topics,
			Group:     name + "-group",
			Processor: kpipev1.ProcessorSpec{Forward: &kpipev1.ForwardProcessor{Topic: name + "-out"}},
			Idle:      kpipev1.IdleSpec{Window: dur(2 * time.Second), Penalty: dur(4 * time.Second)},
			Scaling: kpipev1.ScalingSpec{
				PollInterval:           dur(time.Second),
				ScaleDownStabilization: dur(2 * time.Second),
			},
		},
	}
	for _, m := range mut {
		m(kp)
	}
	return kp
}

func getPipeline(g Gomega, key types.NamespacedName) *kpipev1.KafkaPipeline {
	kp := &kpipev1.KafkaPipeline{}
	g.Expect(k8s.Get(context.Background(), key, kp)).To(Succeed())
	return kp
}

func getDeployment(g Gomega, key types.NamespacedName) *appsv1.Deployment {
	d := &appsv1.Deployment{}
	g.Expect(k8s.Get(context.Background(), key, d)).To(Succeed())
	return d
}

func condition(kp *kpipev1.KafkaPipeline, typ string) metav1.Condition {
	for _, c := range kp.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{Type: typ, Status: "Absent"}
}
