package v1alpha1

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Bounds of a KafkaPipeline. The schema markers on the types carry the same values, and the
// API test suite runs values at and just past each bound through both the API server and
// Validate.
const (
	// MaxNameLength bounds metadata.name: the name is the Deployment's name and the value of
	// the pods' kpipe.io/pipeline label, and label values are at most 63 characters.
	MaxNameLength = 63
	// MaxTopics bounds spec.topics.
	MaxTopics = 64
	// MaxGroupBytes bounds spec.group in bytes of UTF-8, as Kafka counts them.
	MaxGroupBytes = 255
	// MaxReplicas bounds spec.replicas and scaling.minReplicas and maxReplicas.
	MaxReplicas = 1000

	MaxIdleWindow             = 24 * time.Hour
	MaxIdlePenalty            = 7 * 24 * time.Hour
	MaxHTTPTimeout            = time.Hour
	MaxBackoff                = time.Hour // retry.initialBackoff and retry.maxBackoff
	MinPollInterval           = time.Second
	MaxPollInterval           = time.Hour
	MaxScaleDownStabilization = 24 * time.Hour
	MinLagTimeTarget          = time.Second
	MaxLagTimeTarget          = 24 * time.Hour
)

// Bounds of spec.pool.memoryBudget, in the schema's CEL rule too.
var (
	MinMemoryBudget = resource.MustParse("1Mi")
	MaxMemoryBudget = resource.MustParse("64Gi")
)

// KafkaVersions are the values spec.kafka.version accepts: the versions the Kafka client
// (IBM/sarama) supports, from 0.11.0.0 on (record headers, which the dead-letter topic and
// forwarding write), in the form the client parses (four parts before 1.0). The schema's enum
// lists the same; the API test suite checks both against the client's list.
var KafkaVersions = []string{
	"0.11.0.0",
	"0.11.0.1",
	"0.11.0.2",
	"1.0.0",
	"1.0.1",
	"1.0.2",
	"1.1.0",
	"1.1.1",
	"2.0.0",
	"2.0.1",
	"2.1.0",
	"2.1.1",
	"2.2.0",
	"2.2.1",
	"2.2.2",
	"2.3.0",
	"2.3.1",
	"2.4.0",
	"2.4.1",
	"2.5.0",
	"2.5.1",
	"2.6.0",
	"2.6.1",
	"2.6.2",
	"2.6.3",
	"2.7.0",
	"2.7.1",
	"2.7.2",
	"2.8.0",
	"2.8.1",
	"2.8.2",
	"3.0.0",
	"3.0.1",
	"3.0.2",
	"3.1.0",
	"3.1.1",
	"3.1.2",
	"3.2.0",
	"3.2.1",
	"3.2.2",
	"3.2.3",
	"3.3.0",
	"3.3.1",
	"3.3.2",
	"3.4.0",
	"3.4.1",
	"3.5.0",
	"3.5.1",
	"3.5.2",
	"3.6.0",
	"3.6.1",
	"3.6.2",
	"3.7.0",
	"3.7.1",
	"3.7.2",
	"3.8.0",
	"3.8.1",
	"3.9.0",
	"3.9.1",
	"3.9.2",
	"4.0.0",
	"4.0.1",
	"4.1.0",
	"4.1.1",
	"4.1.2",
	"4.2.0",
	"4.2.1",
	"4.3.0",
	"4.3.1",
}

// positive reports a duration that is unset-but-required, not above zero, or above most.
func positive(p *field.Path, d *metav1.Duration, most time.Duration) field.ErrorList {
	switch {
	case d == nil:
		return field.ErrorList{field.Required(p, "a duration is required")}
	case d.Duration <= 0 || d.Duration > most:
		return field.ErrorList{field.Invalid(p, d.Duration.String(), "must be a positive duration of at most "+short(most))}
	}
	return nil
}

// between reports a duration that is unset-but-required, below least or above most. A least of
// 0 allows 0; the schema's pattern refuses a negative duration.
func between(p *field.Path, d *metav1.Duration, least, most time.Duration) field.ErrorList {
	switch {
	case d == nil:
		return field.ErrorList{field.Required(p, "a duration is required")}
	case least == 0 && d.Duration < 0:
		return field.ErrorList{field.Invalid(p, d.Duration.String(), "must not be negative")}
	case least == 0 && d.Duration > most:
		return field.ErrorList{field.Invalid(p, d.Duration.String(), "must be at most "+short(most))}
	case d.Duration < least || d.Duration > most:
		return field.ErrorList{field.Invalid(p, d.Duration.String(), fmt.Sprintf("must be at least %s and at most %s", short(least), short(most)))}
	}
	return nil
}

// short writes a bound the way the schema's messages do: 24h, not 24h0m0s.
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
