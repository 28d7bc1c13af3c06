package render

import (
	"slices"
	"testing"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// The required contract rises only with a field of the table that the spec uses.
func TestRequiredContract(t *testing.T) {
	table := []contractField{
		{since: 2, path: "processor.http.signing", used: func(s *kpipev1.KafkaPipelineSpec) bool { return s.Processor.HTTP != nil }},
		{since: 3, path: "deadLetter.headers", used: func(s *kpipev1.KafkaPipelineSpec) bool { return s.DeadLetter != nil }},
	}
	plain := &kpipev1.KafkaPipelineSpec{Processor: kpipev1.ProcessorSpec{Forward: &kpipev1.ForwardProcessor{Topic: "out"}}}
	if v, fields := requiredContract(plain, table); v != 1 || fields != nil {
		t.Errorf("plain spec: %d %q, want 1 and no field", v, fields)
	}
	http := &kpipev1.KafkaPipelineSpec{Processor: kpipev1.ProcessorSpec{HTTP: &kpipev1.HTTPProcessor{URL: "http://h"}}}
	if v, fields := requiredContract(http, table); v != 2 || !slices.Equal(fields, []string{"processor.http.signing"}) {
		t.Errorf("http spec: %d %q", v, fields)
	}
	both := http.DeepCopy()
	both.DeadLetter = &kpipev1.DeadLetterSpec{Topic: "dlq"}
	if v, fields := requiredContract(both, table); v != 3 || len(fields) != 2 {
		t.Errorf("both: %d %q", v, fields)
	}
	// The shipped table never requires more than this module's runtime implements.
	if v, _ := RequiredContract(both); v > kpipev1.PodContractVersion {
		t.Errorf("RequiredContract = %d above PodContractVersion %d", v, kpipev1.PodContractVersion)
	}
	for _, f := range contractFields {
		if f.since > kpipev1.PodContractVersion || f.since < 2 || f.used == nil {
			t.Errorf("contract table row %q: since %d, PodContractVersion %d", f.path, f.since, kpipev1.PodContractVersion)
		}
	}
}

// ExactlyOnce and ReadCommitted need a runtime that knows them; the defaults do not.
func TestRequiredContractOfDelivery(t *testing.T) {
	spec := &kpipev1.KafkaPipelineSpec{Processor: kpipev1.ProcessorSpec{Forward: &kpipev1.ForwardProcessor{Topic: "out"}}}
	spec.Default()
	if v, fields := RequiredContract(spec); v != 1 || fields != nil {
		t.Fatalf("defaults: contract %d, fields %v; want 1 and none", v, fields)
	}
	spec.Processor.Forward.Delivery = kpipev1.DeliveryExactlyOnce
	spec.Kafka.IsolationLevel = kpipev1.ReadCommitted
	spec.Kafka.RebalanceStrategy = kpipev1.RebalanceRange
	v, fields := RequiredContract(spec)
	if v != 2 || len(fields) != 2 || fields[0] != "kafka.isolationLevel" || fields[1] != "processor.forward.delivery" {
		t.Fatalf("ExactlyOnce: contract %d, fields %v; want 2 and both fields", v, fields)
	}
}
