package controllers_test

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/twmb/franz-go/pkg/kfake"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers"
	"github.com/kpipe-io/kpipe/controllers/lag"
	"github.com/kpipe-io/kpipe/controllers/manager"
	"github.com/kpipe-io/kpipe/internal/kafkaclient"
	"github.com/kpipe-io/kpipe/test/envtest"
	"github.com/kpipe-io/kpipe/test/kafkatest"
)

var _ = Describe("a pipeline with tls.insecureSkipVerify", func() {
	ctx := context.Background()

	It("is Ready with reason InsecureSkipVerify and a Warning event, and reason Ready once it verifies", func() {
		pki := kafkatest.NewPKI(GinkgoTB())
		tlsKafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "tls-in"), kfake.TLS(pki.ServerTLS(GinkgoTB())))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(tlsKafka.Close)
		ns := newNamespace()
		key := types.NamespacedName{Namespace: ns, Name: "unverified"}
		// The client certificate only: without the CA, only insecureSkipVerify lets it connect.
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka-tls"},
			Data:       map[string][]byte{kafkaclient.KeyTLSCert: pki.ClientCert, kafkaclient.KeyTLSKey: pki.ClientKey},
		}
		Expect(k8s.Create(ctx, sec)).To(Succeed())
		Expect(k8s.Create(ctx, newPipeline(ns, key.Name, []string{"tls-in"}, func(kp *kpipev1.KafkaPipeline) {
			kp.Spec.Kafka.BootstrapServers = tlsKafka.ListenAddrs()
			kp.Spec.Kafka.TLS = &kpipev1.TLSSpec{InsecureSkipVerify: true, SecretRef: &kpipev1.SecretReference{Name: sec.Name}}
			kp.Spec.Scaling.MinReplicas = ptr.To[int32](1)
		}))).To(Succeed())
		Eventually(func(g Gomega) {
			ready := condition(getPipeline(g, key), kpipev1.ConditionReady)
			g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), ready.Message)
			g.Expect(ready.Reason).To(Equal(controllers.ReasonInsecureSkipVerify))
			g.Expect(ready.Message).To(ContainSubstring("broker certificates are not verified"))
			g.Expect(kstatusOf(g, key)).To(Equal(status.CurrentStatus))
			g.Expect(hasEvent(eventsFor(g, ns, key.Name), controllers.ReasonInsecureSkipVerify, "not verified")).To(BeTrue())
		}).Should(Succeed())

		// With the CA in the Secret and verification on, the reason is Ready again.
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(sec), sec)).To(Succeed())
		sec.Data[kafkaclient.KeyCACert] = pki.CA
		Expect(k8s.Update(ctx, sec)).To(Succeed())
		kp := getPipeline(Default, key)
		patch := client.MergeFrom(kp.DeepCopy())
		kp.Spec.Kafka.TLS.InsecureSkipVerify = false
		Expect(k8s.Patch(ctx, kp, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			ready := condition(getPipeline(g, key), kpipev1.ConditionReady)
			g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), ready.Message)
			g.Expect(ready.Reason).To(Equal(controllers.ReasonReady))
			g.Expect(ready.ObservedGeneration).To(Equal(getPipeline(g, key).Generation))
		}).Should(Succeed())
	})
})

// listener is a TCP listener on 127.0.0.1 that records every connection and byte it receives.
type listener struct {
	net.Listener
	conns, bytes atomic.Int64
}

func listen() *listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	l := &listener{Listener: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.conns.Add(1)
			go func() {
				defer func() { _ = c.Close() }()
				_, _ = io.Copy(counter{&l.bytes}, c)
			}()
		}
	}()
	DeferCleanup(ln.Close)
	return l
}

type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// A control plane of its own, with an operator run as `kpipe manager --secret-opt-in
// --watch-namespaces=<watched>`: the suite's operator, which watches every namespace, must not
// see these pipelines.
var _ = Describe("an operator with --secret-opt-in and --watch-namespaces", Ordered, func() {
	ctx := context.Background()
	var (
		ctl              *envtest.Env
		admin            client.Client
		watched, ignored string
	)

	BeforeAll(func() {
		e, err := envtest.Start()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(e.Stop)
		ctl = e
		scheme := manager.Scheme()
		admin, err = client.New(e.Config, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		operator := installRBAC(e, admin, scheme)
		watched, ignored = "team-a", "team-b"
		for _, ns := range []string{watched, ignored} {
			Expect(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		}
		r := &controllers.KafkaPipelineReconciler{
			Image: testImage, SecretOptIn: true, MaxBackoff: 2 * time.Second,
			Lag: lag.NewReader(lag.Options{Timeout: 2 * time.Second}),
		}
		mgr, err := manager.New(operator, manager.Options{
			QPS: 100, Burst: 200, WatchNamespaces: []string{watched}, SkipNameValidation: true,
		}, r)
		Expect(err).NotTo(HaveOccurred())
		mctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(done)
			Expect(mgr.Start(mctx)).To(Succeed())
		}()
		DeferCleanup(func() { cancel(); Eventually(done).Should(BeClosed()) })
	})

	It("reconciles pipelines of the watched namespace only", func() {
		for _, ns := range []string{watched, ignored} {
			Expect(admin.Create(ctx, newPipeline(ns, "plain", []string{"orders"}))).To(Succeed())
		}
		Eventually(func(g Gomega) {
			g.Expect(admin.Get(ctx, types.NamespacedName{Namespace: watched, Name: "plain"}, &appsv1.Deployment{})).To(Succeed())
			kp := &kpipev1.KafkaPipeline{}
			g.Expect(admin.Get(ctx, types.NamespacedName{Namespace: watched, Name: "plain"}, kp)).To(Succeed())
			g.Expect(kp.Status.ObservedGeneration).To(Equal(kp.Generation))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			kp := &kpipev1.KafkaPipeline{}
			g.Expect(admin.Get(ctx, types.NamespacedName{Namespace: ignored, Name: "plain"}, kp)).To(Succeed())
			g.Expect(kp.Status.Conditions).To(BeEmpty())
			err := admin.Get(ctx, types.NamespacedName{Namespace: ignored, Name: "plain"}, &appsv1.Deployment{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
		}, 3*time.Second, 500*time.Millisecond).Should(Succeed())
	})

	It("sends nothing with a Secret that has not opted in, though the pipeline's creator cannot read it", func() {
		l := listen()
		Expect(admin.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: watched, Name: "team-c-credentials"},
			Data:       map[string][]byte{"username": []byte("carol"), "password": []byte("carol-secret-pw")},
		})).To(Succeed())
		mallory := pipelineAuthor(ctl, admin, watched)
		canRead := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: watched, Verb: "get", Resource: "secrets", Name: "team-c-credentials"},
		}}
		Expect(mallory.Create(ctx, canRead)).To(Succeed())
		Expect(canRead.Status.Allowed).To(BeFalse())
		err := mallory.Get(ctx, types.NamespacedName{Namespace: watched, Name: "team-c-credentials"}, &corev1.Secret{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)

		key := types.NamespacedName{Namespace: watched, Name: "exfiltrate"}
		Expect(mallory.Create(ctx, newPipeline(watched, key.Name, []string{"orders"}, func(kp *kpipev1.KafkaPipeline) {
			kp.Spec.Kafka.BootstrapServers = []string{l.Addr().String()}
			kp.Spec.Kafka.SASL = &kpipev1.SASLSpec{Mechanism: kpipev1.SASLSCRAMSHA512, SecretRef: kpipev1.SecretReference{Name: "team-c-credentials"}}
		}))).To(Succeed())
		Eventually(func(g Gomega) {
			kp := &kpipev1.KafkaPipeline{}
			g.Expect(admin.Get(ctx, key, kp)).To(Succeed())
			ready := condition(kp, kpipev1.ConditionReady)
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(controllers.ReasonSecretNotOptedIn))
			g.Expect(ready.Message).To(ContainSubstring(`"team-c-credentials"`))
			g.Expect(ready.Message).To(ContainSubstring(kpipev1.SecretOptInLabel + "=true"))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(l.conns.Load()).To(BeZero())
			g.Expect(l.bytes.Load()).To(BeZero())
			err := admin.Get(ctx, key, &appsv1.Deployment{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
		}, 3*time.Second, 500*time.Millisecond).Should(Succeed())

		// Once the Secret opts in, the pipeline proceeds: the listener sees the operator connect.
		sec := &corev1.Secret{}
		Expect(admin.Get(ctx, types.NamespacedName{Namespace: watched, Name: "team-c-credentials"}, sec)).To(Succeed())
		sec.Labels = map[string]string{kpipev1.SecretOptInLabel: kpipev1.SecretOptInValue}
		Expect(admin.Update(ctx, sec)).To(Succeed())
		Eventually(l.conns.Load).Should(BeNumerically(">", 0))
		Eventually(func(g Gomega) {
			g.Expect(admin.Get(ctx, key, &appsv1.Deployment{})).To(Succeed())
		}).Should(Succeed())
	})
})

// pipelineAuthor is a client for a user who may create KafkaPipelines in ns, and read nothing
// else.
func pipelineAuthor(e *envtest.Env, admin client.Client, ns string) client.Client {
	ctx := context.Background()
	Expect(admin.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pipeline-author"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{kpipev1.GroupVersion.Group}, Resources: []string{"kafkapipelines"}, Verbs: []string{"create", "get", "list"}}},
	})).To(Succeed())
	Expect(admin.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pipeline-author"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pipeline-author"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "mallory"}},
	})).To(Succeed())
	user, err := e.AddUser(ctrlenvtest.User{Name: "mallory", Groups: []string{"system:authenticated"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	c, err := client.New(user.Config(), client.Options{Scheme: admin.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	return c
}
