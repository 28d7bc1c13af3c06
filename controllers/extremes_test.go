package controllers_test

import (
	"context"
	"math"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers"
)

// The hostile-input suite (api/v1alpha1) shows which extreme values the API server accepts;
// these specs show that the operator then works with them, or reports a specific condition.
var _ = Describe("values at the edge of what the schema accepts", func() {
	ctx := context.Background()

	DescribeTable("are reconciled to Ready or to a named reason",
		func(name string, mut func(*kpipev1.KafkaPipeline), wantReason string) {
			ns := newNamespace()
			key := types.NamespacedName{Namespace: ns, Name: name}
			Expect(k8s.Create(ctx, newPipeline(ns, name, []string{"orders"}, mut))).To(Succeed())
			Eventually(func(g Gomega) {
				kp := getPipeline(g, key)
				ready := condition(kp, kpipev1.ConditionReady)
				g.Expect(ready.Reason).To(Equal(wantReason), ready.Message)
				g.Expect(kp.Status.ObservedGeneration).To(Equal(kp.Generation))
				if wantReason == controllers.ReasonReady {
					g.Expect(ready.Status).To(Equal(metav1.ConditionTrue))
					g.Expect(getDeployment(g, key).Spec.Replicas).NotTo(BeNil())
				}
			}).WithTimeout(30 * time.Second).Should(Succeed())
		},
		Entry("a name of 63 characters", strings.Repeat("n", 63), func(*kpipev1.KafkaPipeline) {}, controllers.ReasonReady),
		Entry("the largest lagPerReplica and activationLag", "huge-lag-settings", func(kp *kpipev1.KafkaPipeline) {
			kp.Spec.Scaling.LagPerReplica = ptr.To[int64](math.MaxInt64)
			kp.Spec.Scaling.ActivationLag = ptr.To[int64](math.MaxInt64)
		}, controllers.ReasonReady),
		Entry("1000 minimum and maximum replicas, capped by 4 partitions", "thousand", func(kp *kpipev1.KafkaPipeline) {
			kp.Spec.Scaling.MinReplicas = ptr.To[int32](1000)
			kp.Spec.Scaling.MaxReplicas = ptr.To[int32](1000)
		}, controllers.ReasonReady),
		Entry("a group of 85 three-byte characters", "euro-group", func(kp *kpipev1.KafkaPipeline) {
			kp.Spec.Group = strings.Repeat("€", 85)
		}, controllers.ReasonReady),
		Entry("durations at their bounds", "long-durations", func(kp *kpipev1.KafkaPipeline) {
			kp.Spec.Scaling.ScaleDownStabilization = &metav1.Duration{Duration: 24 * time.Hour}
			kp.Spec.Idle = kpipev1.IdleSpec{Window: &metav1.Duration{Duration: 24 * time.Hour}, Penalty: &metav1.Duration{Duration: 168 * time.Hour}}
		}, controllers.ReasonReady),
		Entry("a memory budget of 64Gi", "big-budget", func(kp *kpipev1.KafkaPipeline) {
			q := resource.MustParse("64Gi")
			kp.Spec.Pool.MemoryBudget = &q
		}, controllers.ReasonReady),
		Entry("a consumed topic that does not exist", "no-topic", func(kp *kpipev1.KafkaPipeline) {
			kp.Spec.Topics = []string{strings.Repeat("t", 249)}
		}, controllers.ReasonTopicNotFound),
		Entry("a broker on port 65535 with nobody there", "no-broker", func(kp *kpipev1.KafkaPipeline) {
			kp.Spec.Kafka.BootstrapServers = []string{"127.0.0.1:65535"}
		}, controllers.ReasonKafkaUnreachable),
	)
})
