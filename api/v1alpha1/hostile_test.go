package v1alpha1_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/IBM/sarama"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/test/envtest"
)

// verdict is what both the API server and the Go path (ParseSpec, Default, Validate) must do
// with a hostile object: refuse it naming field, or accept it.
type verdict struct {
	refused bool
	field   string // in the API server's error and in the Go errors
	goField string // in the Go errors, when it is spelt differently there
}

// serverOnly: the schema refuses a spelling that the Go path accepts on purpose. Go writes
// durations with ns and µs units (1.5µs), and the runtime reads the spec the operator
// re-encodes, so ParseSpec accepts every duration Go can parse; the value itself is checked by
// both.
func serverOnly(field string) verdict { return verdict{refused: true, field: field} }

func refused(field string) verdict        { return verdict{refused: true, field: field, goField: field} }
func refusedGo(field, gof string) verdict { return verdict{refused: true, field: field, goField: gof} }
func accepted() verdict                   { return verdict{} }
func named(name string, spec map[string]any) *unstructured.Unstructured {
	u := newObject(spec)
	u.SetName(name)
	return u
}

// goObjectErrors runs a whole object through the Go path: the spec as the runtime decodes it,
// then KafkaPipeline.Validate, which also checks the name.
func goObjectErrors(u *unstructured.Unstructured) string {
	b, err := json.Marshal(u.Object["spec"])
	Expect(err).NotTo(HaveOccurred())
	s, err := kpipev1.ParseSpec(b)
	if err != nil {
		return err.Error()
	}
	s.Default()
	kp := kpipev1.KafkaPipeline{Spec: *s}
	kp.Name = u.GetName()
	return aggregate(kp.Validate())
}

func repeat(s string, n int) string { return strings.Repeat(s, n) }

func topicsN(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = "t" + strings.Repeat("x", i)
	}
	return out
}

func httpSpec(url string) map[string]any {
	return set(validSpec(), "processor", map[string]any{"http": map[string]any{"url": url}})
}

var _ = Describe("hostile input", func() {
	DescribeTable("is refused naming the field by the API server and by Validate, or accepted by both and stored as sent",
		func(u *unstructured.Unstructured, want verdict) {
			err := k8sClient.Create(ctx, u, client.FieldValidation("Strict"))
			goErrs := goObjectErrors(u)
			if want.refused {
				Expect(err).To(HaveOccurred(), "the API server accepted it")
				Expect(err.Error()).To(ContainSubstring(want.field))
				if want.goField == "" {
					Expect(goErrs).To(Equal("<nil>"))
					return
				}
				Expect(goErrs).To(ContainSubstring(want.goField), "the Go path: %s", goErrs)
				return
			}
			Expect(err).NotTo(HaveOccurred())
			Expect(goErrs).To(Equal("<nil>"), "the Go path refuses what the API server accepted")

			// Stored as sent, with the defaults Default fills.
			var got kpipev1.KafkaPipeline
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), &got)).To(Succeed())
			b, err := json.Marshal(u.Object["spec"])
			Expect(err).NotTo(HaveOccurred())
			want2, err := kpipev1.ParseSpec(b)
			Expect(err).NotTo(HaveOccurred())
			want2.Default()
			Expect(got.Spec).To(Equal(*want2))
			Expect(got.Validate()).To(BeEmpty())
		},
		// durations
		Entry("a stabilization too long for a Go duration", newObject(set(validSpec(), "scaling.scaleDownStabilization", "9999999h")), refused("spec.scaling.scaleDownStabilization")),
		Entry("a stabilization just over int64 nanoseconds", newObject(set(validSpec(), "scaling.scaleDownStabilization", "2562048h")), refused("spec.scaling.scaleDownStabilization")),
		Entry("a stabilization over 24h", newObject(set(validSpec(), "scaling.scaleDownStabilization", "24h1s")), refused("spec.scaling.scaleDownStabilization")),
		Entry("a stabilization of exactly 24h", newObject(set(validSpec(), "scaling.scaleDownStabilization", "24h")), accepted()),
		Entry("a stabilization of 0s", newObject(set(validSpec(), "scaling.scaleDownStabilization", "0s")), accepted()),
		Entry("a stabilization that is a number", newObject(set(validSpec(), "scaling.scaleDownStabilization", int64(300))), refused("spec.scaling.scaleDownStabilization")),
		Entry("a lag time target of 0s", newObject(set(validSpec(), "scaling.lagTimeTarget", "0s")), refused("spec.scaling.lagTimeTarget")),
		Entry("a lag time target just under 1s", newObject(set(validSpec(), "scaling.lagTimeTarget", "999ms")), refused("spec.scaling.lagTimeTarget")),
		Entry("a lag time target of exactly 1s", newObject(set(validSpec(), "scaling.lagTimeTarget", "1s")), accepted()),
		Entry("a lag time target of exactly 24h", newObject(set(validSpec(), "scaling.lagTimeTarget", "24h")), accepted()),
		Entry("a lag time target over 24h", newObject(set(validSpec(), "scaling.lagTimeTarget", "24h1ms")), refused("spec.scaling.lagTimeTarget")),
		Entry("a lag time target too long for a Go duration", newObject(set(validSpec(), "scaling.lagTimeTarget", "9999999h")), refused("spec.scaling.lagTimeTarget")),
		Entry("a negative lag time target", newObject(set(validSpec(), "scaling.lagTimeTarget", "-30s")), refused("spec.scaling.lagTimeTarget")),
		Entry("a lag time target that is a number", newObject(set(validSpec(), "scaling.lagTimeTarget", int64(30))), refused("spec.scaling.lagTimeTarget")),
		Entry("a lag time target with no unit", newObject(set(validSpec(), "scaling.lagTimeTarget", "30")), refused("spec.scaling.lagTimeTarget")),
		Entry("an empty duration", newObject(set(validSpec(), "idle.window", "")), refused("spec.idle.window")),
		Entry("a duration with an exponent", newObject(set(validSpec(), "idle.window", "1e3s")), refused("spec.idle.window")),
		Entry("a duration in nanoseconds", newObject(set(validSpec(), "idle.window", "1000ns")), serverOnly("spec.idle.window")),
		Entry("a duration of 100µs written in seconds", newObject(set(validSpec(), "retry.initialBackoff", "0.0001s")), accepted()),
		Entry("a grace period of 3600s", newObject(set(validSpec(), "template.terminationGracePeriodSeconds", int64(3600))), accepted()),
		Entry("an unknown pull policy", newObject(set(validSpec(), "template.imagePullPolicy", "Sometimes")), refused("spec.template.imagePullPolicy")),
		Entry("an image of 1025 characters", newObject(set(validSpec(), "template.image", repeat("i", 1025))), refused("spec.template.image")),
		Entry("257 environment variables", newObject(set(validSpec(), "template.env", envN(257))), refused("spec.template.env")),
		Entry("a fractional duration", newObject(set(validSpec(), "idle.window", "1.5m")), accepted()),
		Entry("an idle window of exactly 24h", newObject(set(set(validSpec(), "idle.window", "24h"), "idle.penalty", "24h")), accepted()),
		Entry("an idle window over 24h", newObject(set(set(validSpec(), "idle.window", "25h"), "idle.penalty", "25h")), refused("spec.idle.window")),
		Entry("an idle penalty of exactly 168h", newObject(set(validSpec(), "idle.penalty", "168h")), accepted()),
		Entry("an idle penalty over 168h", newObject(set(validSpec(), "idle.penalty", "168h1ms")), refused("spec.idle.penalty")),
		Entry("an idle penalty of a million hours", newObject(set(validSpec(), "idle.penalty", "1000000h")), refused("spec.idle.penalty")),
		Entry("an http timeout of exactly 1h", newObject(set(httpSpec("http://svc:8080/"), "processor.http.timeout", "1h")), accepted()),
		Entry("an http timeout over 1h", newObject(set(httpSpec("http://svc:8080/"), "processor.http.timeout", "61m")), refused("spec.processor.http.timeout")),
		Entry("a zero http timeout", newObject(set(httpSpec("http://svc:8080/"), "processor.http.timeout", "0s")), refused("spec.processor.http.timeout")),
		Entry("backoffs of exactly 1h", newObject(set(set(validSpec(), "retry.initialBackoff", "1h"), "retry.maxBackoff", "60m")), accepted()),
		Entry("an initial backoff over 1h", newObject(set(set(validSpec(), "retry.initialBackoff", "3601s"), "retry.maxBackoff", "2h")), refused("spec.retry.initialBackoff")),
		Entry("a max backoff over 1h", newObject(set(validSpec(), "retry.maxBackoff", "2h")), refused("spec.retry.maxBackoff")),
		Entry("a poll interval of exactly 1h", newObject(set(validSpec(), "scaling.pollInterval", "1h")), accepted()),
		Entry("a poll interval over 1h", newObject(set(validSpec(), "scaling.pollInterval", "1h1ms")), refused("spec.scaling.pollInterval")),
		Entry("a poll interval of exactly 1s", newObject(set(validSpec(), "scaling.pollInterval", "1000ms")), accepted()),
		Entry("a poll interval just under 1s", newObject(set(validSpec(), "scaling.pollInterval", "999ms")), refused("spec.scaling.pollInterval")),

		// bootstrap servers
		Entry("port 0", newObject(set(validSpec(), "kafka.bootstrapServers", []any{"kafka:0"})), refused("spec.kafka.bootstrapServers[0]")),
		Entry("port 99999", newObject(set(validSpec(), "kafka.bootstrapServers", []any{"kafka:99999"})), refused("spec.kafka.bootstrapServers[0]")),
		Entry("port 65536", newObject(set(validSpec(), "kafka.bootstrapServers", []any{"a:9092", "kafka:65536"})), refused("spec.kafka.bootstrapServers[1]")),
		Entry("port 00000", newObject(set(validSpec(), "kafka.bootstrapServers", []any{"kafka:00000"})), refused("spec.kafka.bootstrapServers[0]")),
		Entry("ports 1 and 65535", newObject(set(validSpec(), "kafka.bootstrapServers", []any{"kafka:1", "kafka:65535"})), accepted()),
		Entry("an IPv6 broker", newObject(set(validSpec(), "kafka.bootstrapServers", []any{"[::1]:9092"})), accepted()),
		Entry("an IPv6 broker on port 0", newObject(set(validSpec(), "kafka.bootstrapServers", []any{"[::1]:0"})), refused("spec.kafka.bootstrapServers[0]")),
		Entry("a broker with a unicode host", newObject(set(validSpec(), "kafka.bootstrapServers", []any{"käfka:9092"})), refused("spec.kafka.bootstrapServers[0]")),
		Entry("a broker with a space", newObject(set(validSpec(), "kafka.bootstrapServers", []any{"kafka :9092"})), refused("spec.kafka.bootstrapServers[0]")),
		Entry("a broker with a scheme", newObject(set(validSpec(), "kafka.bootstrapServers", []any{"tcp://kafka:9092"})), refused("spec.kafka.bootstrapServers[0]")),
		Entry("the same broker twice", newObject(set(validSpec(), "kafka.bootstrapServers", []any{"kafka:9092", "kafka:9092"})), refused("spec.kafka.bootstrapServers[1]")),
		Entry("33 brokers", newObject(set(validSpec(), "kafka.bootstrapServers", brokersN(33))), refused("spec.kafka.bootstrapServers")),
		Entry("32 brokers", newObject(set(validSpec(), "kafka.bootstrapServers", brokersN(32))), accepted()),

		// names
		Entry("a name of 63 characters", named(repeat("n", 63), validSpec()), accepted()),
		Entry("a name of 64 characters", named(repeat("m", 64), validSpec()), refused("metadata.name")),
		Entry("a name of 253 characters", named(repeat("a", 63)+"."+repeat("b", 63)+"."+repeat("c", 63)+"."+repeat("d", 61), validSpec()), refused("metadata.name")),

		// replicas
		Entry("a million manual replicas", newObject(set(validSpec(), "replicas", int64(1000000))), refused("spec.replicas")),
		Entry("1001 manual replicas", newObject(set(validSpec(), "replicas", int64(1001))), refused("spec.replicas")),
		// disruption budget
		Entry("a disruption budget of 0 unavailable", newObject(set(validSpec(), "disruptionBudget.maxUnavailable", int64(0))), refused("spec.disruptionBudget.maxUnavailable")),
		Entry("a disruption budget of 0%", newObject(set(validSpec(), "disruptionBudget.maxUnavailable", "0%")), refused("spec.disruptionBudget.maxUnavailable")),
		Entry("a disruption budget of 101%", newObject(set(validSpec(), "disruptionBudget.maxUnavailable", "101%")), refused("spec.disruptionBudget.maxUnavailable")),
		Entry("a disruption budget of words", newObject(set(validSpec(), "disruptionBudget.maxUnavailable", "half")), refused("spec.disruptionBudget.maxUnavailable")),
		Entry("a disruption budget without maxUnavailable", newObject(set(validSpec(), "disruptionBudget", map[string]any{})), refusedGo("spec.disruptionBudget.maxUnavailable", "spec.disruptionBudget.maxUnavailable")),
		Entry("a disruption budget of 1", newObject(set(validSpec(), "disruptionBudget.maxUnavailable", int64(1))), accepted()),
		Entry("a disruption budget of 100%", newObject(set(validSpec(), "disruptionBudget.maxUnavailable", "100%")), accepted()),
		Entry("replicas in Auto mode (kubectl scale would be ignored)", newObject(set(validSpec(), "replicas", int64(2))), refused("spec.replicas")),
		Entry("replicas in explicit Auto mode", newObject(set(set(validSpec(), "scaling.mode", "Auto"), "replicas", int64(0))), refused("spec.replicas")),
		Entry("1000 manual replicas", newObject(set(set(validSpec(), "scaling.mode", "Manual"), "replicas", int64(1000))), accepted()),
		Entry("replicas beyond int32", newObject(set(validSpec(), "replicas", int64(1)<<31)), refusedGo("spec.replicas", "replicas")),
		Entry("1001 minimum replicas", newObject(set(set(validSpec(), "scaling.minReplicas", int64(1001)), "scaling.maxReplicas", int64(1000))), refused("spec.scaling.minReplicas")),
		Entry("1001 maximum replicas", newObject(set(validSpec(), "scaling.maxReplicas", int64(1001))), refused("spec.scaling.maxReplicas")),
		Entry("1000 minimum and maximum replicas", newObject(set(set(validSpec(), "scaling.minReplicas", int64(1000)), "scaling.maxReplicas", int64(1000))), accepted()),
		Entry("the largest lagPerReplica", newObject(set(validSpec(), "scaling.lagPerReplica", int64(1<<63-1))), accepted()),
		Entry("the largest activationLag", newObject(set(validSpec(), "scaling.activationLag", int64(1<<63-1))), accepted()),
		Entry("a negative activationLag", newObject(set(validSpec(), "scaling.activationLag", int64(-1))), refused("spec.scaling.activationLag")),
		Entry("a pool of 4097 workers", newObject(set(validSpec(), "pool.size", int64(4097))), refused("spec.pool.size")),
		Entry("a buffer of 65537", newObject(set(validSpec(), "pool.buffer", int64(65537))), refused("spec.pool.buffer")),
		Entry("a memory budget of 1Mi", newObject(set(validSpec(), "pool.memoryBudget", "1Mi")), accepted()),
		Entry("a memory budget of 64Gi", newObject(set(validSpec(), "pool.memoryBudget", "64Gi")), accepted()),
		Entry("a memory budget below 1Mi", newObject(set(validSpec(), "pool.memoryBudget", "1023Ki")), refused("spec.pool.memoryBudget")),
		Entry("a memory budget above 64Gi", newObject(set(validSpec(), "pool.memoryBudget", "65Gi")), refused("spec.pool.memoryBudget")),
		Entry("a memory budget of half the memory limit", newObject(set(set(validSpec(), "pool.memoryBudget", "256Mi"), "template.resources", map[string]any{"limits": map[string]any{"memory": "512Mi"}})), accepted()),
		Entry("a memory budget above the memory limit", newObject(set(set(validSpec(), "pool.memoryBudget", "1Gi"), "template.resources", map[string]any{"limits": map[string]any{"memory": "512Mi"}})), refused("spec.pool.memoryBudget")),
		Entry("101 attempts", newObject(set(validSpec(), "retry.maxAttempts", int64(101))), refused("spec.retry.maxAttempts")),
		Entry("100 attempts", newObject(set(validSpec(), "retry.maxAttempts", int64(100))), accepted()),
		Entry("a grace period of 3601s", newObject(set(validSpec(), "template.terminationGracePeriodSeconds", int64(3601))), refused("spec.template.terminationGracePeriodSeconds")),

		// groups: Kafka counts bytes
		Entry("a group of 255 ASCII characters", newObject(set(validSpec(), "group", repeat("g", 255))), accepted()),
		Entry("a group of 256 ASCII characters", newObject(set(validSpec(), "group", repeat("g", 256))), refused("spec.group")),
		Entry("a group of 200 two-byte characters", newObject(set(validSpec(), "group", repeat("é", 200))), refused("spec.group")),
		Entry("a group of 85 three-byte characters (255 bytes)", newObject(set(validSpec(), "group", repeat("€", 85))), accepted()),
		Entry("a group of 86 three-byte characters (258 bytes)", newObject(set(validSpec(), "group", repeat("€", 86))), refused("spec.group")),
		Entry("a group of 64 emoji (256 bytes)", newObject(set(validSpec(), "group", repeat("😀", 64))), refused("spec.group")),
		Entry("a group of no-break spaces", newObject(set(validSpec(), "group", "\u00a0\u00a0")), refused("spec.group")),
		Entry("a group of a tab and a newline", newObject(set(validSpec(), "group", "\t\n")), refused("spec.group")),
		Entry("a group with a control character", newObject(set(validSpec(), "group", "orders\u0007")), accepted()),

		// topics
		Entry("64 topics", newObject(set(validSpec(), "topics", topicsN(64))), accepted()),
		Entry("65 topics", newObject(set(validSpec(), "topics", topicsN(65))), refused("spec.topics")),
		Entry("a topic of 249 characters", newObject(set(validSpec(), "topics", []any{repeat("t", 249)})), accepted()),
		Entry("a unicode topic", newObject(set(validSpec(), "topics", []any{"ördrs"})), refused("spec.topics[0]")),
		Entry("an empty topic", newObject(set(validSpec(), "topics", []any{""})), refused("spec.topics[0]")),
		Entry("a blank topic", newObject(set(validSpec(), "topics", []any{" "})), refused("spec.topics[0]")),
		Entry("a topic with a newline", newObject(set(validSpec(), "topics", []any{"orders\n"})), refused("spec.topics[0]")),
		Entry("the topic '.'", newObject(set(validSpec(), "topics", []any{"."})), refused("spec.topics[0]")),
		// delivery and isolation level
		Entry("exactly-once reading committed records", newObject(set(set(set(validSpec(), "processor.forward.delivery", "ExactlyOnce"), "kafka.isolationLevel", "ReadCommitted"), "kafka.rebalanceStrategy", "Range")), accepted()),
		Entry("exactly-once with RoundRobin", newObject(set(set(set(validSpec(), "processor.forward.delivery", "ExactlyOnce"), "kafka.isolationLevel", "ReadCommitted"), "kafka.rebalanceStrategy", "RoundRobin")), accepted()),
		Entry("exactly-once with the default rebalance strategy", newObject(set(set(validSpec(), "processor.forward.delivery", "ExactlyOnce"), "kafka.isolationLevel", "ReadCommitted")), refused("spec.kafka.rebalanceStrategy")),
		Entry("exactly-once with CooperativeSticky", newObject(set(set(set(validSpec(), "processor.forward.delivery", "ExactlyOnce"), "kafka.isolationLevel", "ReadCommitted"), "kafka.rebalanceStrategy", "CooperativeSticky")), refused("spec.kafka.rebalanceStrategy")),
		Entry("exactly-once with the default isolation level", newObject(set(set(validSpec(), "processor.forward.delivery", "ExactlyOnce"), "kafka.rebalanceStrategy", "Range")), refused("spec.kafka.isolationLevel")),
		Entry("exactly-once reading uncommitted records", newObject(set(set(set(validSpec(), "processor.forward.delivery", "ExactlyOnce"), "kafka.isolationLevel", "ReadUncommitted"), "kafka.rebalanceStrategy", "Range")), refused("spec.kafka.isolationLevel")),
		Entry("an unknown delivery", newObject(set(validSpec(), "processor.forward.delivery", "AtMostOnce")), refused("spec.processor.forward.delivery")),
		Entry("a delivery in lower case", newObject(set(set(validSpec(), "processor.forward.delivery", "exactlyonce"), "kafka.isolationLevel", "ReadCommitted")), refused("spec.processor.forward.delivery")),
		Entry("an unknown isolation level", newObject(set(validSpec(), "kafka.isolationLevel", "Serializable")), refused("spec.kafka.isolationLevel")),
		// Go cannot tell "" from unset (omitempty): Default fills it, the schema refuses it.
		Entry("an empty isolation level", newObject(set(validSpec(), "kafka.isolationLevel", "")), serverOnly("spec.kafka.isolationLevel")),
		Entry("at-least-once reading committed records", newObject(set(set(validSpec(), "processor.forward.delivery", "AtLeastOnce"), "kafka.isolationLevel", "ReadCommitted")), accepted()),
		Entry("a handler reading committed records", newObject(set(httpSpec("http://svc:8080/"), "kafka.isolationLevel", "ReadCommitted")), accepted()),
		Entry("a forward topic of 250 characters", newObject(set(validSpec(), "processor.forward.topic", repeat("f", 250))), refused("spec.processor.forward.topic")),
		Entry("a dead-letter topic equal to the forward topic", newObject(set(validSpec(), "deadLetter", map[string]any{"topic": "orders-out"})), refused("spec.deadLetter.topic")),
		Entry("an empty dead-letter topic", newObject(set(validSpec(), "deadLetter", map[string]any{"topic": ""})), refused("spec.deadLetter.topic")),
		Entry("a dead-letter topic of 249 characters", newObject(set(validSpec(), "deadLetter", map[string]any{"topic": repeat("d", 249)})), accepted()),

		// Kafka versions (every supported one is run below)
		Entry("Kafka 0.8.0", newObject(set(validSpec(), "kafka.version", "0.8.0")), refused("spec.kafka.version")),
		Entry("Kafka 0.10.2.0, before record headers", newObject(set(validSpec(), "kafka.version", "0.10.2.0")), refused("spec.kafka.version")),
		Entry("Kafka 0.11.0 in three parts", newObject(set(validSpec(), "kafka.version", "0.11.0")), refused("spec.kafka.version")),
		Entry("Kafka 99.0.0", newObject(set(validSpec(), "kafka.version", "99.0.0")), refused("spec.kafka.version")),
		Entry("Kafka v3.6.0", newObject(set(validSpec(), "kafka.version", "v3.6.0")), refused("spec.kafka.version")),
		Entry("Kafka 3.6", newObject(set(validSpec(), "kafka.version", "3.6")), refused("spec.kafka.version")),

		// the rebalance strategy
		Entry("a lower-case rebalance strategy", newObject(set(validSpec(), "kafka.rebalanceStrategy", "cooperative-sticky")), refused("spec.kafka.rebalanceStrategy")),
		Entry("the eager Sticky strategy", newObject(set(validSpec(), "kafka.rebalanceStrategy", "Sticky")), refused("spec.kafka.rebalanceStrategy")),
		// The Go path reads "" as unset (omitempty) and defaults it.
		Entry("an empty rebalance strategy", newObject(set(validSpec(), "kafka.rebalanceStrategy", "")), serverOnly("spec.kafka.rebalanceStrategy")),
		Entry("a rebalance strategy with a newline", newObject(set(validSpec(), "kafka.rebalanceStrategy", "Range\n")), refused("spec.kafka.rebalanceStrategy")),
		Entry("the Range strategy", newObject(set(validSpec(), "kafka.rebalanceStrategy", "Range")), accepted()),
		Entry("the RoundRobin strategy", newObject(set(validSpec(), "kafka.rebalanceStrategy", "RoundRobin")), accepted()),

		// http.url
		Entry("a URL with a user and password", newObject(httpSpec("http://user:pw@svc:8080/")), refused("spec.processor.http.url")),
		Entry("a URL with a user", newObject(httpSpec("https://token@svc/")), refused("spec.processor.http.url")),
		Entry("a URL with an empty user", newObject(httpSpec("https://:pw@svc/")), refused("spec.processor.http.url")),
		Entry("a URL with '@' in its path and query", newObject(httpSpec("http://svc/a@b?c=d@e")), accepted()),
		Entry("a file:// URL", newObject(httpSpec("file:///etc/passwd")), refused("spec.processor.http.url")),
		Entry("a ftp:// URL", newObject(httpSpec("ftp://svc/x")), refused("spec.processor.http.url")),
		Entry("a javascript: URL", newObject(httpSpec("javascript:alert(1)")), refused("spec.processor.http.url")),
		Entry("a URL without a host", newObject(httpSpec("http:///path")), refused("spec.processor.http.url")),
		Entry("a URL with port 0", newObject(httpSpec("http://svc:0/")), refused("spec.processor.http.url")),
		Entry("a URL with port 70000", newObject(httpSpec("http://svc:70000/")), refused("spec.processor.http.url")),
		Entry("a URL with port 65535", newObject(httpSpec("http://svc:65535/")), accepted()),
		Entry("an IPv6 URL", newObject(httpSpec("http://[::1]:8080/x")), accepted()),
		Entry("an upper-case scheme", newObject(httpSpec("HTTPS://SVC/x")), accepted()),
		Entry("a URL with a newline", newObject(httpSpec("http://svc/\n")), refused("spec.processor.http.url")),
		Entry("a URL of 2049 characters", newObject(httpSpec("http://svc/"+repeat("p", 2038))), refused("spec.processor.http.url")),

		// SASL and Secrets
		Entry("SASL PLAIN without TLS", newObject(set(validSpec(), "kafka.sasl", map[string]any{"mechanism": "PLAIN", "secretRef": map[string]any{"name": "u"}})), refused("spec.kafka.sasl.mechanism")),
		Entry("SASL PLAIN over TLS", newObject(set(set(validSpec(), "kafka.sasl", map[string]any{"mechanism": "PLAIN", "secretRef": map[string]any{"name": "u"}}), "kafka.tls", map[string]any{})), accepted()),
		Entry("SCRAM without TLS", newObject(set(validSpec(), "kafka.sasl", map[string]any{"mechanism": "SCRAM-SHA-256", "secretRef": map[string]any{"name": "u"}})), accepted()),
		Entry("a lower-case SASL mechanism", newObject(set(validSpec(), "kafka.sasl", map[string]any{"mechanism": "plain", "secretRef": map[string]any{"name": "u"}})), refused("spec.kafka.sasl.mechanism")),
		Entry("a Secret name of 254 characters", newObject(set(validSpec(), "kafka.tls", map[string]any{"secretRef": map[string]any{"name": repeat("s", 254)}})), refused("spec.kafka.tls.secretRef.name")),
		Entry("a Secret name with a slash", newObject(set(validSpec(), "kafka.tls", map[string]any{"secretRef": map[string]any{"name": "../kube-system/x"}})), refused("spec.kafka.tls.secretRef.name")),

		// the rest
		Entry("a handler name of 64 characters", newObject(set(set(validSpec(), "processor", map[string]any{"handler": map[string]any{"name": repeat("h", 64)}}), "template.image", "img")), refused("spec.processor.handler.name")),
		Entry("a unicode handler name", newObject(set(set(validSpec(), "processor", map[string]any{"handler": map[string]any{"name": "händler"}}), "template.image", "img")), refused("spec.processor.handler.name")),
		Entry("an unknown top-level spec field", newObject(set(validSpec(), "replica", int64(1))), refusedGo("spec.replica", "replica")),
		Entry("a KPIPE_ variable in lower case is not kpipe's", newObject(set(validSpec(), "template.env", []any{map[string]any{"name": "kpipe_x", "value": "1"}})), accepted()),
	)

	It("accepts exactly the Kafka versions the client supports from 0.11.0.0, in the schema and in Validate", func() {
		// The schema's enum is KafkaVersions.
		b, err := os.ReadFile(filepath.Join(envtest.RepoRoot(), "config", "crd", "bases", "kpipe.io_kafkapipelines.yaml"))
		Expect(err).NotTo(HaveOccurred())
		var crd struct {
			Spec struct {
				Versions []struct {
					Schema struct {
						OpenAPIV3Schema struct {
							Properties map[string]struct {
								Properties map[string]struct {
									Properties map[string]struct {
										Enum []string `json:"enum"`
									} `json:"properties"`
								} `json:"properties"`
							} `json:"properties"`
						} `json:"openAPIV3Schema"`
					} `json:"schema"`
				} `json:"versions"`
			} `json:"spec"`
		}
		Expect(yaml.Unmarshal(b, &crd)).To(Succeed())
		enum := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["kafka"].Properties["version"].Enum
		Expect(enum).To(Equal(kpipev1.KafkaVersions))

		// KafkaVersions is the client's list from 0.11.0.0, as the client writes them.
		var want []string
		for _, v := range sarama.SupportedVersions {
			if v.IsAtLeast(sarama.V0_11_0_0) {
				want = append(want, v.String())
			}
		}
		Expect(kpipev1.KafkaVersions).To(Equal(want))

		// Each of the client's versions, and a few it does not support, through both paths.
		candidates := []string{"0.8.0", "0.11.0", "4.3.2", "5.0.0", "1.0", "1.0.0.0"}
		for _, v := range sarama.SupportedVersions {
			candidates = append(candidates, v.String())
		}
		for _, v := range candidates {
			spec := set(validSpec(), "kafka.version", v)
			err := k8sClient.Create(ctx, newObject(spec), client.DryRunAll)
			goErrs := goErrors(spec)
			if slices.Contains(want, v) {
				Expect(err).NotTo(HaveOccurred(), v)
				Expect(goErrs).To(Equal("<nil>"), v)
				parsed, err := sarama.ParseKafkaVersion(v)
				Expect(err).NotTo(HaveOccurred(), "the client cannot parse %s", v)
				Expect(parsed.String()).To(Equal(v))
			} else {
				Expect(err).To(MatchError(ContainSubstring("spec.kafka.version")), v)
				Expect(goErrs).To(ContainSubstring("spec.kafka.version"), v)
			}
		}
	})
})

func brokersN(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = fmt.Sprintf("kafka-%d:9092", i)
	}
	return out
}

func envN(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"name": fmt.Sprintf("E%d", i), "value": "v"}
	}
	return out
}
