package controllers_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/twmb/franz-go/pkg/kmsg"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers"
	"github.com/kpipe-io/kpipe/test/kafkatest"
)

func kstatusOf(g Gomega, key types.NamespacedName) status.Status {
	kp := getPipeline(g, key)
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(kp)
	g.Expect(err).NotTo(HaveOccurred())
	u := &unstructured.Unstructured{Object: obj}
	u.SetAPIVersion(kpipev1.GroupVersion.String())
	u.SetKind("KafkaPipeline")
	res, err := status.Compute(u)
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

func eventsFor(g Gomega, ns, name string) []eventsv1.Event {
	var list eventsv1.EventList
	g.Expect(k8s.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Regarding.Kind == "KafkaPipeline" {
			out = append(out, e)
		}
	}
	return out
}

func hasEvent(events []eventsv1.Event, reason, contains string) bool {
	for _, e := range events {
		if e.Reason == reason && strings.Contains(e.Note, contains) {
			return true
		}
	}
	return false
}

// counterValue sums a counter of the operator's metrics over one pipeline's series.
func counterValue(name, pipeline string) float64 {
	families, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "pipeline" && l.GetValue() == pipeline {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

func configHash(d *appsv1.Deployment) string {
	return d.Spec.Template.Annotations[kpipev1.ConfigHashAnnotation]
}

var _ = Describe("KafkaPipeline controller", func() {
	ctx := context.Background()

	Describe("creating a pipeline with SASL credentials", Ordered, func() {
		var (
			sasl *kafkatest.Cluster
			ns   string
			key  types.NamespacedName
		)
		BeforeAll(func() {
			var err error
			sasl, err = kafkatest.StartSASL(1, 4, []string{"sasl-in"},
				kafkatest.SCRAMUser{User: "alice", Password: "alice-secret-pw"},
				kafkatest.SCRAMUser{User: "bob", Password: "bob-secret-pw"})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(sasl.Close)
			ns = newNamespace()
			key = types.NamespacedName{Namespace: ns, Name: "enricher"}
			Expect(k8s.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka-user"},
				Data:       map[string][]byte{"username": []byte("alice"), "password": []byte("alice-secret-pw")},
			})).To(Succeed())
			kp := newPipeline(ns, key.Name, []string{"sasl-in"}, func(kp *kpipev1.KafkaPipeline) {
				kp.Spec.Kafka.BootstrapServers = sasl.Addrs
				kp.Spec.Kafka.SASL = &kpipev1.SASLSpec{Mechanism: kpipev1.SASLSCRAMSHA512, SecretRef: kpipev1.SecretReference{Name: "kafka-user"}}
				kp.Spec.Scaling.MinReplicas = ptr.To[int32](1)
			})
			Expect(k8s.Create(ctx, kp)).To(Succeed())
		})

		It("renders the Deployment kpipe run expects", func() {
			Eventually(func(g Gomega) {
				d := getDeployment(g, key)
				g.Expect(*d.Spec.Replicas).To(Equal(int32(1)))
				g.Expect(d.OwnerReferences).To(HaveLen(1))
				g.Expect(d.OwnerReferences[0].Kind).To(Equal("KafkaPipeline"))
				g.Expect(d.Spec.Selector.MatchLabels).To(Equal(map[string]string{kpipev1.PipelineLabel: key.Name}))
				g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue("app.kubernetes.io/name", "kpipe-pipeline"))
				g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue("app.kubernetes.io/instance", key.Name))
				ps := d.Spec.Template.Spec
				c := ps.Containers[0]
				g.Expect(c.Image).To(Equal(testImage))
				g.Expect(c.Args).To(Equal([]string{"run", "--shutdown-timeout=25s"}))
				g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
				g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
				g.Expect(*ps.TerminationGracePeriodSeconds).To(Equal(int64(30)))
				g.Expect(*c.SecurityContext.RunAsNonRoot).To(BeTrue())
				g.Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
				g.Expect(*c.SecurityContext.AllowPrivilegeEscalation).To(BeFalse())
				g.Expect(c.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
				g.Expect(c.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
				g.Expect(c.Resources.Requests.Cpu().String()).To(Equal("100m"))
				g.Expect(c.Resources.Limits.Memory().String()).To(Equal("512Mi"))

				env := map[string]string{}
				for _, e := range c.Env {
					env[e.Name] = e.Value
				}
				g.Expect(env).To(HaveKeyWithValue(kpipev1.EnvSASLDir, kpipev1.SASLMountPath))
				g.Expect(env).To(HaveKeyWithValue(kpipev1.EnvPipelineName, key.Name))
				g.Expect(env).To(HaveKeyWithValue(kpipev1.EnvPipelineNamespace, ns))
				spec, err := kpipev1.ParseSpec([]byte(env[kpipev1.EnvPipelineSpec]))
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(spec.Template).To(BeNil())
				g.Expect(spec.Validate()).To(BeEmpty())
				g.Expect(spec.Kafka.SASL.SecretRef.Name).To(Equal("kafka-user"))

				var secretVol string
				for _, v := range ps.Volumes {
					if v.Secret != nil && v.Secret.SecretName == "kafka-user" {
						secretVol = v.Name
					}
				}
				g.Expect(secretVol).NotTo(BeEmpty())
				g.Expect(c.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: secretVol, MountPath: kpipev1.SASLMountPath, ReadOnly: true}))

				raw, _ := json.Marshal(d)
				g.Expect(string(raw)).NotTo(ContainSubstring("alice-secret-pw"))
			}).Should(Succeed())
		})

		It("becomes Ready, and kstatus reads it as Current", func() {
			Eventually(func(g Gomega) {
				kp := getPipeline(g, key)
				ready := condition(kp, kpipev1.ConditionReady)
				g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), ready.Message)
				g.Expect(ready.ObservedGeneration).To(Equal(kp.Generation))
				g.Expect(condition(kp, controllers.ConditionReconciling).Status).To(Equal(metav1.ConditionStatus("Absent")))
				g.Expect(kp.Status.ObservedGeneration).To(Equal(kp.Generation))
				g.Expect(kp.Status.Selector).To(Equal(kpipev1.PipelineLabel + "=" + key.Name))
				g.Expect(kp.Status.Partitions).To(Equal(int32(4)))
				g.Expect(kp.Status.Topics).To(ConsistOf(kpipev1.TopicStatus{Name: "sasl-in", Partitions: 4}))
				g.Expect(kp.Status.ReadyReplicas).To(Equal(int32(1)))
				g.Expect(kstatusOf(g, key)).To(Equal(status.CurrentStatus))
			}).Should(Succeed())
		})

		It("rolls the pods and rebuilds its Kafka client when the Secret rotates", func() {
			var before string
			Eventually(func(g Gomega) { before = configHash(getDeployment(g, key)); g.Expect(before).NotTo(BeEmpty()) }).Should(Succeed())
			sasl.CountRequests()
			sasl.Counts()
			sec := &corev1.Secret{}
			Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "kafka-user"}, sec)).To(Succeed())
			sec.Data = map[string][]byte{"username": []byte("bob"), "password": []byte("bob-secret-pw")}
			Expect(k8s.Update(ctx, sec)).To(Succeed())
			Eventually(func(g Gomega) {
				g.Expect(configHash(getDeployment(g, key))).NotTo(Equal(before))
			}).Should(Succeed())
			// The operator logged in again with the new credentials (a new client), and is Ready.
			logins := 0
			Eventually(func() int {
				logins += sasl.Counts().Of(kmsg.SASLAuthenticate)
				return logins
			}).Should(BeNumerically(">", 0))
			Eventually(func(g Gomega) {
				kp := getPipeline(g, key)
				g.Expect(condition(kp, kpipev1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
			}).Should(Succeed())
		})

		It("reports wrong credentials as Kafka unreachable without revealing them", func() {
			sec := &corev1.Secret{}
			Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "kafka-user"}, sec)).To(Succeed())
			sec.Data = map[string][]byte{"username": []byte("bob"), "password": []byte("wrong-secret-pw")}
			Expect(k8s.Update(ctx, sec)).To(Succeed())
			Eventually(func(g Gomega) {
				kp := getPipeline(g, key)
				ready := condition(kp, kpipev1.ConditionReady)
				g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
				g.Expect(ready.Reason).To(Equal(controllers.ReasonKafkaUnreachable))
				raw, _ := json.Marshal(kp)
				g.Expect(string(raw)).NotTo(ContainSubstring("secret-pw"))
				for _, e := range eventsFor(g, ns, key.Name) {
					g.Expect(e.Note).NotTo(ContainSubstring("secret-pw"))
				}
				g.Expect(*getDeployment(g, key).Spec.Replicas).To(Equal(int32(1)))
			}).Should(Succeed())
		})
	})

	Describe("scaling on lag", Ordered, func() {
		const topic = "scale-in"
		var (
			ns  string
			key types.NamespacedName
		)
		BeforeAll(func() {
			Expect(kc.CreateTopic(ctx, topic, 10)).To(Succeed())
			ns = newNamespace()
			key = types.NamespacedName{Namespace: ns, Name: "scaler"}
			// The group has committed offset 0 everywhere and 25 messages wait per partition.
			zero := map[int32]int64{}
			for p := range int32(10) {
				zero[p] = 0
			}
			Expect(kc.Commit(ctx, key.Name+"-group", map[string]map[int32]int64{topic: zero})).To(Succeed())
			Expect(kc.ProduceAll(ctx, topic, 10, 25)).To(Succeed())
			kp := newPipeline(ns, key.Name, []string{topic}, func(kp *kpipev1.KafkaPipeline) {
				kp.Spec.InitialOffset = kpipev1.InitialOffsetEarliest
				kp.Spec.Scaling.LagPerReplica = ptr.To[int64](100)
				kp.Spec.Scaling.MaxReplicas = ptr.To[int32](20)
			})
			Expect(k8s.Create(ctx, kp)).To(Succeed())
		})

		It("scales up to ceil(lag / lagPerReplica)", func() {
			Eventually(func(g Gomega) {
				kp := getPipeline(g, key)
				g.Expect(kp.Status.Lag).To(Equal(int64(250)))
				g.Expect(kp.Status.DesiredReplicas).To(Equal(int32(3)))
				g.Expect(*getDeployment(g, key).Spec.Replicas).To(Equal(int32(3)))
			}).Should(Succeed())
		})

		It("caps replicas at the partition count", func() {
			Expect(kc.ProduceAll(ctx, topic, 10, 100)).To(Succeed())
			Eventually(func(g Gomega) {
				kp := getPipeline(g, key)
				g.Expect(kp.Status.Lag).To(Equal(int64(1250)))
				g.Expect(kp.Status.DesiredReplicas).To(Equal(int32(10))) // 13 wanted, 10 partitions
				g.Expect(*getDeployment(g, key).Spec.Replicas).To(Equal(int32(10)))
				g.Expect(kp.Status.LastScaleTime).NotTo(BeNil())
				g.Expect(hasEvent(eventsFor(g, ns, key.Name), "ScaledUp", "to 10 replicas")).To(BeTrue())
			}).Should(Succeed())
		})

		It("exports lag per partition on the operator's metrics", func() {
			families, err := metrics.Registry.Gather()
			Expect(err).NotTo(HaveOccurred())
			found := 0
			for _, f := range families {
				if f.GetName() != "kpipe_pipeline_partition_lag" {
					continue
				}
				for _, m := range f.Metric {
					for _, l := range m.Label {
						if l.GetName() == "pipeline" && l.GetValue() == key.Name {
							found++
						}
					}
				}
			}
			Expect(found).To(Equal(10))
		})

		It("scales down after the stabilization window once the group catches up, then idles to zero", func() {
			Expect(kc.CommitToEnd(ctx, key.Name+"-group", topic)).To(Succeed())
			Eventually(func(g Gomega) {
				kp := getPipeline(g, key)
				g.Expect(kp.Status.Lag).To(BeZero())
				g.Expect(*getDeployment(g, key).Spec.Replicas).To(BeNumerically("<", 10))
			}).Should(Succeed())
			Eventually(func(g Gomega) {
				kp := getPipeline(g, key)
				g.Expect(*getDeployment(g, key).Spec.Replicas).To(BeZero())
				g.Expect(kp.Status.DesiredReplicas).To(BeZero())
				g.Expect(kp.Status.IdleSince).NotTo(BeNil())
				idle := condition(kp, kpipev1.ConditionIdle)
				g.Expect(idle.Status).To(Equal(metav1.ConditionTrue))
				g.Expect(idle.Reason).To(BeElementOf("ScaledToZero", "IdlePenalty", "BelowActivationLag"))
				g.Expect(hasEvent(eventsFor(g, ns, key.Name), "ScaledDown", "")).To(BeTrue())
				g.Expect(hasEvent(eventsFor(g, ns, key.Name), "ScaledToZero", "to 0 replicas")).To(BeTrue())
			}).Should(Succeed())
		})

		It("wakes on lag above activationLag, not before the idle penalty is over", func() {
			var zeroAt time.Time
			Eventually(func(g Gomega) {
				kp := getPipeline(g, key)
				g.Expect(kp.Status.LastScaleTime).NotTo(BeNil())
				zeroAt = kp.Status.LastScaleTime.Time
			}).Should(Succeed())
			Expect(kc.Produce(ctx, topic, 5, 0)).To(Succeed())
			Eventually(func(g Gomega) {
				kp := getPipeline(g, key)
				g.Expect(*getDeployment(g, key).Spec.Replicas).To(Equal(int32(1)))
				g.Expect(kp.Status.LastScaleTime.Time.Sub(zeroAt)).To(BeNumerically(">=", 4*time.Second))
				g.Expect(condition(kp, kpipev1.ConditionIdle).Status).To(Equal(metav1.ConditionFalse))
				g.Expect(hasEvent(eventsFor(g, ns, key.Name), "Activated", "from 0 to 1")).To(BeTrue())
			}).Should(Succeed())
		})
	})

	Describe("a partition whose commits stop while it has lag", func() {
		It("is reported Stalled and does not hold replicas up", func() {
			const topic = "stall-in"
			Expect(kc.CreateTopic(ctx, topic, 4)).To(Succeed())
			ns := newNamespace()
			key := types.NamespacedName{Namespace: ns, Name: "stuck"}
			Expect(kc.Commit(ctx, key.Name+"-group", map[string]map[int32]int64{topic: {0: 0, 1: 0, 2: 0, 3: 0}})).To(Succeed())
			Expect(kc.ProduceAll(ctx, topic, 4, 50)).To(Succeed())
			// A member holds the partitions and commits nothing, with no telemetry record: the
			// stall is told from committed offsets alone (a group without members would rest).
			member, err := kafkatest.JoinGroup(kc.Addrs, key.Name+"-group", "stuck-0", topic)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(member.Close)
			Expect(k8s.Create(ctx, newPipeline(ns, key.Name, []string{topic}, func(kp *kpipev1.KafkaPipeline) {
				kp.Spec.Scaling.LagPerReplica = ptr.To[int64](10)
			}))).To(Succeed())
			Eventually(func(g Gomega) {
				g.Expect(*getDeployment(g, key).Spec.Replicas).To(Equal(int32(4)))
			}).Should(Succeed())
			Eventually(func(g Gomega) {
				kp := getPipeline(g, key)
				stalled := condition(kp, kpipev1.ConditionStalled)
				g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
				g.Expect(stalled.Reason).To(Equal(controllers.ReasonStalledParts))
				g.Expect(stalled.Message).To(ContainSubstring("stall-in/0"))
				g.Expect(kp.Status.Lag).To(Equal(int64(200)))
				g.Expect(*getDeployment(g, key).Spec.Replicas).To(Equal(int32(1)))
			}, 90*time.Second).Should(Succeed())
			Expect(k8s.Delete(ctx, &kpipev1.KafkaPipeline{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name}})).To(Succeed())
		})
	})

	Describe("manual control", Ordered, func() {
		var (
			ns  string
			key types.NamespacedName
		)
		BeforeAll(func() {
			ns = newNamespace()
			key = types.NamespacedName{Namespace: ns, Name: "manual"}
			Expect(k8s.Create(ctx, newPipeline(ns, key.Name, []string{"orders"}, func(kp *kpipev1.KafkaPipeline) {
				kp.Spec.Scaling.Mode = kpipev1.ScalingManual
			}))).To(Succeed())
		})

		It("runs one replica when spec.replicas is unset", func() {
			Eventually(func(g Gomega) {
				g.Expect(*getDeployment(g, key).Spec.Replicas).To(Equal(int32(1)))
				kp := getPipeline(g, key)
				g.Expect(condition(kp, kpipev1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
				g.Expect(kstatusOf(g, key)).To(Equal(status.CurrentStatus))
			}).Should(Succeed())
		})

		It("follows kubectl scale through the scale subresource, without rolling the pods", func() {
			var hash string
			Eventually(func(g Gomega) { hash = configHash(getDeployment(g, key)) }).Should(Succeed())
			out, err := env.Kubectl(ctx, "scale", "kafkapipeline/"+key.Name, "-n", ns, "--replicas=3")
			Expect(err).NotTo(HaveOccurred(), out)
			Eventually(func(g Gomega) {
				d := getDeployment(g, key)
				g.Expect(*d.Spec.Replicas).To(Equal(int32(3)))
				g.Expect(configHash(d)).To(Equal(hash))
				kp := getPipeline(g, key)
				g.Expect(kp.Status.Replicas).To(Equal(int32(3)))
				g.Expect(kp.Status.ReadyReplicas).To(Equal(int32(3)))
				g.Expect(hasEvent(eventsFor(g, ns, key.Name), "ScaledManually", "from 1 to 3")).To(BeTrue())
			}).Should(Succeed())
			out, err = env.Kubectl(ctx, "get", "kafkapipeline", key.Name, "-n", ns)
			Expect(err).NotTo(HaveOccurred(), out)
			GinkgoWriter.Println(out)
		})

		It("scales to zero and stops polling while suspended", func() {
			// Count the group's OffsetFetch requests: every poll of this pipeline sends one.
			var fetches atomic.Int32
			group := key.Name + "-group"
			kc.ControlKey(int16(kmsg.OffsetFetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
				kc.KeepControl()
				r := req.(*kmsg.OffsetFetchRequest)
				hit := r.Group == group
				for _, g := range r.Groups {
					hit = hit || g.Group == group
				}
				if hit {
					fetches.Add(1)
				}
				return nil, nil, false
			})
			Eventually(fetches.Load).Should(BeNumerically(">", 0))

			kp := &kpipev1.KafkaPipeline{}
			Expect(k8s.Get(ctx, key, kp)).To(Succeed())
			patch := client.MergeFrom(kp.DeepCopy())
			kp.Spec.Suspend = true
			Expect(k8s.Patch(ctx, kp, patch)).To(Succeed())
			Eventually(func(g Gomega) {
				g.Expect(*getDeployment(g, key).Spec.Replicas).To(BeZero())
				kp := getPipeline(g, key)
				g.Expect(condition(kp, kpipev1.ConditionReady).Reason).To(Equal(controllers.ReasonSuspended))
				g.Expect(condition(kp, kpipev1.ConditionIdle).Reason).To(Equal(controllers.ReasonSuspended))
				g.Expect(kstatusOf(g, key)).To(Equal(status.CurrentStatus))
			}).Should(Succeed())
			fetches.Store(0)
			Consistently(fetches.Load, 3*time.Second, 250*time.Millisecond).Should(BeZero())
		})
	})

	Describe("failures", func() {
		It("reports Kafka unreachable, keeps going and never crashes", func() {
			ns := newNamespace()
			key := types.NamespacedName{Namespace: ns, Name: "nowhere"}
			Expect(k8s.Create(ctx, newPipeline(ns, key.Name, []string{"orders"}, func(kp *kpipev1.KafkaPipeline) {
				kp.Spec.Kafka.BootstrapServers = []string{"127.0.0.1:1"}
				kp.Spec.Scaling.MinReplicas = ptr.To[int32](2)
			}))).To(Succeed())
			Eventually(func(g Gomega) {
				kp := getPipeline(g, key)
				ready := condition(kp, kpipev1.ConditionReady)
				g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
				g.Expect(ready.Reason).To(Equal(controllers.ReasonKafkaUnreachable))
				g.Expect(condition(kp, controllers.ConditionReconciling).Status).To(Equal(metav1.ConditionTrue))
				g.Expect(kstatusOf(g, key)).To(Equal(status.InProgressStatus))
				g.Expect(*getDeployment(g, key).Spec.Replicas).To(Equal(int32(2)))
				g.Expect(hasEvent(eventsFor(g, ns, key.Name), controllers.ReasonKafkaUnreachable, "")).To(BeTrue())
			}).Should(Succeed())
			// It keeps trying, with backoff: the failed reads add up.
			Eventually(func() float64 { return counterValue("kpipe_kafka_errors_total", key.Name) }).Should(BeNumerically(">=", 3))
		})

		It("leaves replicas untouched when Kafka goes away", func() {
			ns := newNamespace()
			key := types.NamespacedName{Namespace: ns, Name: "lost"}
			Expect(k8s.Create(ctx, newPipeline(ns, key.Name, []string{"payments"}, func(kp *kpipev1.KafkaPipeline) {
				kp.Spec.Scaling.MinReplicas = ptr.To[int32](2)
			}))).To(Succeed())
			Eventually(func(g Gomega) {
				g.Expect(condition(getPipeline(g, key), kpipev1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
			}).Should(Succeed())
			// Run 3 replicas, then lose Kafka.
			kp := getPipeline(Default, key)
			patch := client.MergeFrom(kp.DeepCopy())
			kp.Spec.Scaling.MinReplicas = ptr.To[int32](3)
			Expect(k8s.Patch(ctx, kp, patch)).To(Succeed())
			Eventually(func(g Gomega) { g.Expect(*getDeployment(g, key).Spec.Replicas).To(Equal(int32(3))) }).Should(Succeed())
			kp = getPipeline(Default, key)
			patch = client.MergeFrom(kp.DeepCopy())
			kp.Spec.Kafka.BootstrapServers = []string{"127.0.0.1:1"}
			kp.Spec.Scaling.MinReplicas = ptr.To[int32](0)
			Expect(k8s.Patch(ctx, kp, patch)).To(Succeed())
			Eventually(func(g Gomega) {
				g.Expect(condition(getPipeline(g, key), kpipev1.ConditionReady).Reason).To(Equal(controllers.ReasonKafkaUnreachable))
			}).Should(Succeed())
			Consistently(func(g Gomega) {
				g.Expect(*getDeployment(g, key).Spec.Replicas).To(Equal(int32(3)))
			}, 3*time.Second, 500*time.Millisecond).Should(Succeed())
		})

		It("reports a missing topic", func() {
			ns := newNamespace()
			key := types.NamespacedName{Namespace: ns, Name: "typo"}
			Expect(k8s.Create(ctx, newPipeline(ns, key.Name, []string{"orders", "ordres"}))).To(Succeed())
			Eventually(func(g Gomega) {
				ready := condition(getPipeline(g, key), kpipev1.ConditionReady)
				g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
				g.Expect(ready.Reason).To(Equal(controllers.ReasonTopicNotFound))
				g.Expect(ready.Message).To(ContainSubstring(`"ordres"`))
				g.Expect(hasEvent(eventsFor(g, ns, key.Name), controllers.ReasonTopicNotFound, "ordres")).To(BeTrue())
			}).Should(Succeed())
		})

		It("waits for a missing Secret without creating pods that cannot start, then proceeds", func() {
			ns := newNamespace()
			key := types.NamespacedName{Namespace: ns, Name: "nosecret"}
			Expect(k8s.Create(ctx, newPipeline(ns, key.Name, []string{"orders"}, func(kp *kpipev1.KafkaPipeline) {
				kp.Spec.Kafka.SASL = &kpipev1.SASLSpec{Mechanism: kpipev1.SASLSCRAMSHA512, SecretRef: kpipev1.SecretReference{Name: "later"}}
			}))).To(Succeed())
			Eventually(func(g Gomega) {
				ready := condition(getPipeline(g, key), kpipev1.ConditionReady)
				g.Expect(ready.Reason).To(Equal(controllers.ReasonSecretNotFound))
				g.Expect(ready.Message).To(ContainSubstring(`"later"`))
			}).Should(Succeed())
			Expect(k8s.Get(ctx, key, &appsv1.Deployment{})).NotTo(Succeed())
			// A Secret without the password key is invalid; the watch on Secrets notices it.
			Expect(k8s.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "later"},
				Data:       map[string][]byte{"username": []byte("u")},
			})).To(Succeed())
			Eventually(func(g Gomega) {
				ready := condition(getPipeline(g, key), kpipev1.ConditionReady)
				g.Expect(ready.Reason).To(Equal(controllers.ReasonSecretInvalid))
				g.Expect(ready.Message).To(ContainSubstring("password"))
			}).Should(Succeed())
			// Suspending needs neither Kafka nor the Secret.
			kp := getPipeline(Default, key)
			patch := client.MergeFrom(kp.DeepCopy())
			kp.Spec.Suspend = true
			Expect(k8s.Patch(ctx, kp, patch)).To(Succeed())
			Eventually(func(g Gomega) {
				g.Expect(condition(getPipeline(g, key), kpipev1.ConditionReady).Reason).To(Equal(controllers.ReasonSuspended))
				g.Expect(*getDeployment(g, key).Spec.Replicas).To(BeZero())
			}).Should(Succeed())
		})
	})
})
