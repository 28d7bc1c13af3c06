package v1alpha1_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/test/envtest"
)

// readSample decodes a file of config/samples.
func readSample(name string) *kpipev1.KafkaPipeline {
	b, err := os.ReadFile(filepath.Join(envtest.RepoRoot(), "config", "samples", name))
	Expect(err).NotTo(HaveOccurred())
	var kp kpipev1.KafkaPipeline
	Expect(yaml.UnmarshalStrict(b, &kp)).To(Succeed())
	return &kp
}

// validSpec is a minimal valid spec as the generic map a user's YAML decodes to.
func validSpec() map[string]any {
	return map[string]any{
		"kafka":     map[string]any{"bootstrapServers": []any{"kafka:9092"}},
		"topics":    []any{"orders"},
		"group":     "orders-enricher",
		"processor": map[string]any{"forward": map[string]any{"topic": "orders-out"}},
	}
}

// set writes value at a dotted path of m, creating maps on the way.
func set(m map[string]any, path string, value any) map[string]any {
	keys := strings.Split(path, ".")
	cur := m
	for _, k := range keys[:len(keys)-1] {
		next, ok := cur[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[k] = next
		}
		cur = next
	}
	cur[keys[len(keys)-1]] = value
	return m
}

func unset(m map[string]any, path string) map[string]any {
	keys := strings.Split(path, ".")
	cur := m
	for _, k := range keys[:len(keys)-1] {
		cur = cur[k].(map[string]any)
	}
	delete(cur, keys[len(keys)-1])
	return m
}

var objectSeq int

func newObject(spec map[string]any) *unstructured.Unstructured {
	objectSeq++
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": kpipev1.GroupVersion.String(),
		"kind":       "KafkaPipeline",
		"metadata":   map[string]any{"name": fmt.Sprintf("kp-%d", objectSeq), "namespace": "default"},
		"spec":       spec,
	}}
	return u
}

// goErrors runs the spec through the runtime's path: strict decoding, defaults, validation.
func goErrors(spec map[string]any) string {
	b, err := json.Marshal(spec)
	Expect(err).NotTo(HaveOccurred())
	s, err := kpipev1.ParseSpec(b)
	if err != nil {
		return err.Error()
	}
	s.Default()
	return aggregate(s.Validate())
}

// aggregate is the errors' text, or "<nil>" when there are none.
func aggregate(errs field.ErrorList) string {
	if agg := errs.ToAggregate(); agg != nil {
		return agg.Error()
	}
	return "<nil>"
}

var _ = Describe("the KafkaPipeline API", func() {
	It("accepts the samples and fills the documented defaults, as Default does", func() {
		for _, name := range []string{"kpipe_v1alpha1_kafkapipeline.yaml", "kpipe_v1alpha1_kafkapipeline_http.yaml"} {
			kp := readSample(name)
			kp.Namespace = "default"
			Expect(k8sClient.Create(ctx, kp, client.FieldValidation("Strict"))).To(Succeed(), name)

			var got kpipev1.KafkaPipeline
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(kp), &got)).To(Succeed())

			// What the server defaulted is what Default fills in Go.
			want := readSample(name).Spec
			want.Default()
			Expect(got.Spec).To(Equal(want), name)
			Expect(want.Validate()).To(BeEmpty(), name)
		}

		var kp kpipev1.KafkaPipeline
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "default", Name: "orders-enricher"}, &kp)).To(Succeed())
		s := kp.Spec
		Expect(s.Pool.Buffer).To(Equal(ptr.To[int32](256)))
		Expect(s.Pool.Size).To(Equal(ptr.To[int32](8)))
		Expect(s.Pool.Ordering).To(Equal(kpipev1.OrderingKey))
		Expect(s.Idle.Window.Duration).To(Equal(time.Minute))
		Expect(s.Idle.Penalty.Duration).To(Equal(5 * time.Minute))
		Expect(*s.Retry.MaxAttempts).To(BeEquivalentTo(5))
		Expect(s.Retry.InitialBackoff.Duration).To(Equal(100 * time.Millisecond))
		Expect(s.Retry.MaxBackoff.Duration).To(Equal(10 * time.Second))
		Expect(s.Scaling.Mode).To(Equal(kpipev1.ScalingAuto))
		Expect(*s.Scaling.MinReplicas).To(BeEquivalentTo(0))
		Expect(*s.Scaling.MaxReplicas).To(BeEquivalentTo(12))
		Expect(*s.Scaling.LagPerReplica).To(BeEquivalentTo(1000))
		Expect(*s.Scaling.ActivationLag).To(BeEquivalentTo(0))
		Expect(s.Scaling.PollInterval.Duration).To(Equal(10 * time.Second))
		Expect(s.Scaling.ScaleDownStabilization.Duration).To(Equal(5 * time.Minute))
		Expect(s.InitialOffset).To(Equal(kpipev1.InitialOffsetEarliest))
		Expect(s.Replicas).To(BeNil(), "replicas is only for Manual mode and has no schema default")
	})

	It("defaults a minimal object", func() {
		u := newObject(validSpec())
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		var kp kpipev1.KafkaPipeline
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), &kp)).To(Succeed())
		Expect(kp.Spec.InitialOffset).To(Equal(kpipev1.InitialOffsetLatest))
		Expect(kp.Spec.Pool.Size).To(BeNil(), "pool.size defaults to the pod's CPUs at run time")
		Expect(*kp.Spec.Scaling.MaxReplicas).To(BeEquivalentTo(10))
		Expect(kp.Spec.DeadLetter).To(BeNil())
	})

	It("serves the scale subresource from spec.replicas and status", func() {
		u := newObject(set(set(validSpec(), "scaling.mode", "Manual"), "replicas", int64(2)))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		out, err := env.Kubectl(ctx, "scale", "kafkapipeline/"+u.GetName(), "--replicas=4", "-n", "default")
		Expect(err).NotTo(HaveOccurred(), out)
		var kp kpipev1.KafkaPipeline
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), &kp)).To(Succeed())
		Expect(kp.Spec.Replicas).To(Equal(ptr.To[int32](4)))
	})

	It("refuses kubectl scale in Auto mode, saying why, instead of storing a count it would ignore", func() {
		u := newObject(validSpec())
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		out, err := env.Kubectl(ctx, "scale", "kafkapipeline/"+u.GetName(), "--replicas=4", "-n", "default")
		Expect(err).To(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("spec.replicas"))
		Expect(out).To(ContainSubstring("scaling.mode Manual only"))
		var kp kpipev1.KafkaPipeline
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), &kp)).To(Succeed())
		Expect(kp.Spec.Replicas).To(BeNil())
	})

	long := strings.Repeat("a", 250)
	DescribeTable("refuses an invalid object with a message naming the field",
		func(spec map[string]any, serverField, serverMsg, goField string) {
			err := k8sClient.Create(ctx, newObject(spec), client.FieldValidation("Strict"))
			Expect(err).To(HaveOccurred(), "the API server accepted it")
			Expect(err.Error()).To(ContainSubstring(serverField))
			Expect(err.Error()).To(ContainSubstring(serverMsg))

			// The runtime refuses the same spec, naming the same field.
			Expect(goErrors(spec)).To(ContainSubstring(goField))
		},
		Entry("no topics", set(validSpec(), "topics", []any{}),
			"spec.topics", "at least 1 items", "spec.topics"),
		Entry("a topic with a character Kafka forbids", set(validSpec(), "topics", []any{"orders/eu"}),
			"spec.topics[0]", "should match", "spec.topics[0]"),
		Entry("the topic '..'", set(validSpec(), "topics", []any{".."}),
			"spec.topics[0]", "cannot be '.' or '..'", "spec.topics[0]"),
		Entry("a topic name longer than 249", set(validSpec(), "topics", []any{long}),
			"spec.topics[0]", "may not be more than 249", "spec.topics[0]"),
		Entry("the same topic twice", set(validSpec(), "topics", []any{"a", "a"}),
			"spec.topics[1]", "Duplicate value", "spec.topics[1]"),
		Entry("an empty group", set(validSpec(), "group", ""),
			"spec.group", "at least 1 chars", "spec.group"),
		Entry("a blank group", set(validSpec(), "group", "   "),
			"spec.group", "must not be blank", "spec.group"),
		Entry("no group", unset(validSpec(), "group"),
			"spec.group", "Required value", "spec.group"),
		Entry("an unknown initialOffset", set(validSpec(), "initialOffset", "Middle"),
			"spec.initialOffset", "Unsupported value", "spec.initialOffset"),
		Entry("no bootstrap servers", set(validSpec(), "kafka.bootstrapServers", []any{}),
			"spec.kafka.bootstrapServers", "at least 1 items", "spec.kafka.bootstrapServers"),
		Entry("a bootstrap server without a port", set(validSpec(), "kafka.bootstrapServers", []any{"kafka"}),
			"spec.kafka.bootstrapServers[0]", "should match", "spec.kafka.bootstrapServers[0]"),
		Entry("an unknown SASL mechanism", set(validSpec(), "kafka.sasl", map[string]any{"mechanism": "GSSAPI", "secretRef": map[string]any{"name": "u"}}),
			"spec.kafka.sasl.mechanism", "Unsupported value", "spec.kafka.sasl.mechanism"),
		Entry("a Secret reference into another namespace", set(validSpec(), "kafka.sasl", map[string]any{"mechanism": "PLAIN", "secretRef": map[string]any{"name": "u", "namespace": "kube-system"}}),
			"spec.kafka.sasl.secretRef.namespace", "unknown field", "secretRef.namespace"),
		Entry("a Secret name that is not a Kubernetes name", set(validSpec(), "kafka.tls", map[string]any{"secretRef": map[string]any{"name": "Kafka_CA"}}),
			"spec.kafka.tls.secretRef.name", "should match", "spec.kafka.tls.secretRef.name"),
		Entry("no processor kind", set(validSpec(), "processor", map[string]any{}),
			"spec.processor", "exactly one of processor.forward, processor.http or processor.handler", "spec.processor"),
		Entry("two processor kinds", set(validSpec(), "processor.http", map[string]any{"url": "http://svc:8080/"}),
			"spec.processor", "exactly one of processor.forward, processor.http or processor.handler", "spec.processor"),
		Entry("an http URL that is not http(s)", set(validSpec(), "processor", map[string]any{"http": map[string]any{"url": "ftp://files/x"}}),
			"spec.processor.http.url", "absolute http:// or https:// URL", "spec.processor.http.url"),
		Entry("a handler without a custom image", set(validSpec(), "processor", map[string]any{"handler": map[string]any{"name": "enrich"}}),
			"spec", "processor.handler needs template.image", "spec.template.image"),
		Entry("forwarding into a consumed topic", set(validSpec(), "processor.forward.topic", "orders"),
			"spec", "processor.forward.topic must not be one of the consumed topics", "spec.processor.forward.topic"),
		Entry("a dead-letter topic that is consumed", set(validSpec(), "deadLetter", map[string]any{"topic": "orders"}),
			"spec", "deadLetter.topic must not be one of the consumed topics", "spec.deadLetter.topic"),
		Entry("an idle penalty shorter than the window", set(set(validSpec(), "idle.window", "5m"), "idle.penalty", "1m"),
			"spec.idle", "idle.penalty must be at least idle.window", "spec.idle.penalty"),
		Entry("a zero idle window", set(validSpec(), "idle.window", "0s"),
			"spec.idle.window", "must be a positive duration", "spec.idle.window"),
		Entry("a duration that is not one", set(validSpec(), "idle.window", "soon"),
			"spec.idle.window", "should match", "spec.idle.window"),
		Entry("a negative duration", set(validSpec(), "retry.initialBackoff", "-1s"),
			"spec.retry.initialBackoff", "should match", "spec.retry.initialBackoff"),
		Entry("no attempts at all", set(validSpec(), "retry.maxAttempts", int64(0)),
			"spec.retry.maxAttempts", "greater than or equal to 1", "spec.retry.maxAttempts"),
		Entry("maxBackoff below initialBackoff", set(set(validSpec(), "retry.initialBackoff", "2s"), "retry.maxBackoff", "1s"),
			"spec.retry", "retry.maxBackoff must be at least retry.initialBackoff", "spec.retry.maxBackoff"),
		Entry("an unknown ordering", set(validSpec(), "pool.ordering", "Random"),
			"spec.pool.ordering", "Unsupported value", "spec.pool.ordering"),
		Entry("a zero buffer", set(validSpec(), "pool.buffer", int64(0)),
			"spec.pool.buffer", "greater than or equal to 1", "spec.pool.buffer"),
		Entry("a pool of zero workers", set(validSpec(), "pool.size", int64(0)),
			"spec.pool.size", "greater than or equal to 1", "spec.pool.size"),
		Entry("maxReplicas below minReplicas", set(set(validSpec(), "scaling.minReplicas", int64(5)), "scaling.maxReplicas", int64(2)),
			"spec.scaling", "scaling.maxReplicas must be at least scaling.minReplicas", "spec.scaling.maxReplicas"),
		Entry("a zero lagPerReplica", set(validSpec(), "scaling.lagPerReplica", int64(0)),
			"spec.scaling.lagPerReplica", "greater than or equal to 1", "spec.scaling.lagPerReplica"),
		Entry("a poll interval under a second", set(validSpec(), "scaling.pollInterval", "500ms"),
			"spec.scaling.pollInterval", "must be at least 1s", "spec.scaling.pollInterval"),
		Entry("an unknown scaling mode", set(validSpec(), "scaling.mode", "Lag"),
			"spec.scaling.mode", "Unsupported value", "spec.scaling.mode"),
		Entry("negative manual replicas", set(validSpec(), "replicas", int64(-1)),
			"spec.replicas", "greater than or equal to 0", "spec.replicas"),
		Entry("an environment variable in kpipe's namespace", set(validSpec(), "template.env", []any{map[string]any{"name": "KPIPE_PIPELINE_SPEC", "value": "{}"}}),
			"spec.template.env", "reserved for kpipe", "spec.template.env[0].name"),
		Entry("an unknown field", set(validSpec(), "pool.workers", int64(4)),
			"spec.pool.workers", "unknown field", "pool.workers"),
	)
})

// The kubectl a user has, against the real API server: apply, get, explain.
var _ = Describe("kubectl", func() {
	It("installs the operator from config/default", func() {
		out, err := env.Kubectl(ctx, "apply", "--server-side", "--force-conflicts", "-k", "config/default")
		Expect(err).NotTo(HaveOccurred(), out)
		for _, want := range []string{
			"customresourcedefinition.apiextensions.k8s.io/kafkapipelines.kpipe.io serverside-applied",
			"namespace/kpipe-system serverside-applied",
			"clusterrole.rbac.authorization.k8s.io/kpipe-manager serverside-applied",
			"deployment.apps/kpipe-manager serverside-applied",
		} {
			Expect(out).To(ContainSubstring(want))
		}
	})

	It("applies the samples, shows the printer columns and explains the fields", func() {
		Expect(env.Kubectl(ctx, "create", "namespace", "samples")).Error().NotTo(HaveOccurred())
		out, err := env.Kubectl(ctx, "apply", "-n", "samples", "-f", "config/samples/")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("kafkapipeline.kpipe.io/orders-enricher created"))
		Expect(out).To(ContainSubstring("kafkapipeline.kpipe.io/payments-webhook created"))

		// Status as the operator would write it, to see it in the columns.
		var kp kpipev1.KafkaPipeline
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "samples", Name: "orders-enricher"}, &kp)).To(Succeed())
		kp.Status = kpipev1.KafkaPipelineStatus{
			Replicas: 3, DesiredReplicas: 4, Partitions: 12, Lag: 4200,
			Conditions: []metav1.Condition{{
				Type: kpipev1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Reconciled",
				Message: "ok", LastTransitionTime: metav1.Now(),
			}},
		}
		Expect(k8sClient.Status().Update(ctx, &kp)).To(Succeed())

		out, err = env.Kubectl(ctx, "get", "kp", "-n", "samples")
		Expect(err).NotTo(HaveOccurred())
		lines := strings.Split(strings.TrimSpace(out), "\n")
		Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "GROUP", "REPLICAS", "DESIRED", "PARTITIONS", "LAG", "READY", "AGE"}))
		Expect(out).To(MatchRegexp(`orders-enricher\s+orders-enricher\s+3\s+4\s+12\s+4200\s+True\s+\d+s`))
		Expect(out).To(MatchRegexp(`payments-webhook\s+payments-webhook\s+`))

		out, err = env.Kubectl(ctx, "explain", "kafkapipeline.spec.idle")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("idle stops a replica's consumer after a quiet window"))
		Expect(out).To(ContainSubstring("window"))
		Expect(out).To(ContainSubstring("window is how long nothing may be consumed"))
		Expect(out).To(ContainSubstring("penalty"))

		// A bad object from a file is refused by kubectl too, naming the field.
		bad := filepath.Join(env.Dir, "bad.yaml")
		Expect(os.WriteFile(bad, []byte(`apiVersion: kpipe.io/v1alpha1
kind: KafkaPipeline
metadata: {name: bad, namespace: samples}
spec:
  kafka: {bootstrapServers: ["kafka:9092"]}
  topics: [orders]
  group: g
  idle: {window: 10m, penalty: 1m}
  processor: {forward: {topic: out}}
`), 0o600)).To(Succeed())
		out, err = env.Kubectl(ctx, "apply", "-f", bad)
		Expect(err).To(HaveOccurred())
		Expect(out).To(ContainSubstring("spec.idle"))
		Expect(out).To(ContainSubstring("idle.penalty must be at least idle.window"))
	})
})
