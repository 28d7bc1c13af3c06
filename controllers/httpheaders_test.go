package controllers_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers"
)

var _ = Describe("processor.http.headersSecretRef", func() {
	ctx := context.Background()

	It("waits for a usable Secret, mounts it, and rolls the pods when it rotates", func() {
		ns := newNamespace()
		key := types.NamespacedName{Namespace: ns, Name: "sink"}
		Expect(k8s.Create(ctx, newPipeline(ns, key.Name, []string{"orders"}, func(kp *kpipev1.KafkaPipeline) {
			kp.Spec.Scaling.Mode = kpipev1.ScalingManual
			kp.Spec.Processor = kpipev1.ProcessorSpec{HTTP: &kpipev1.HTTPProcessor{
				URL: "https://sink.example/hook", HeadersSecretRef: &kpipev1.SecretReference{Name: "sink-auth"}}}
		}))).To(Succeed())

		By("a missing Secret: no Deployment, reason SecretNotFound")
		Eventually(func(g Gomega) {
			g.Expect(condition(getPipeline(g, key), kpipev1.ConditionReady).Reason).To(Equal(controllers.ReasonSecretNotFound))
		}).Should(Succeed())
		Expect(apierrors.IsNotFound(k8s.Get(ctx, key, &appsv1.Deployment{}))).To(BeTrue(), "no Deployment while the Secret is missing")

		By("a Secret with a header kpipe sets itself: reason SecretInvalid, naming the key")
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sink-auth"},
			Data: map[string][]byte{"Authorization": []byte("Bearer one"), "Kpipe-Topic": []byte("x")}}
		Expect(k8s.Create(ctx, secret)).To(Succeed())
		Eventually(func(g Gomega) {
			c := condition(getPipeline(g, key), kpipev1.ConditionReady)
			g.Expect(c.Reason).To(Equal(controllers.ReasonSecretInvalid))
			g.Expect(c.Message).To(ContainSubstring(`key "Kpipe-Topic" is a header kpipe sets itself`))
			g.Expect(c.Message).NotTo(ContainSubstring("Bearer one"))
		}).Should(Succeed())

		By("a usable Secret: mounted where the runtime reads it")
		delete(secret.Data, "Kpipe-Topic")
		Expect(k8s.Update(ctx, secret)).To(Succeed())
		var hash string
		Eventually(func(g Gomega) {
			d := getDeployment(g, key)
			mounted := false
			for _, v := range d.Spec.Template.Spec.Volumes {
				mounted = mounted || (v.Secret != nil && v.Secret.SecretName == "sink-auth")
			}
			g.Expect(mounted).To(BeTrue(), "the headers Secret is not a volume")
			g.Expect(d.Spec.Template.Spec.Containers[0].VolumeMounts).To(ContainElement(HaveField("MountPath", kpipev1.HTTPHeadersMountPath)))
			hash = configHash(d)
		}).Should(Succeed())

		By("a rotation rolls the pods")
		secret.Data["Authorization"] = []byte("Bearer two")
		Expect(k8s.Update(ctx, secret)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(configHash(getDeployment(g, key))).NotTo(Equal(hash))
		}).Should(Succeed())
	})
})
