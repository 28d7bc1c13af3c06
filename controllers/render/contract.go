package render

import (
	"slices"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// contractField is a spec field whose meaning a pod must not ignore, and the first pod
// contract version whose runtimes know it.
type contractField struct {
	// since is the pod contract version that introduced the field.
	since int
	// path names the field in the spec, as kpipev1.DecodeSpec reports unknown fields (for
	// example "processor.http.signing").
	path string
	// used is whether a (defaulted) spec uses the field in a way an older runtime would get
	// wrong by ignoring it.
	used func(*kpipev1.KafkaPipelineSpec) bool
}

// contractFields is the table RequiredContract reads. Add a row when a field is added whose
// meaning cannot be dropped silently (a pod that ignored it would lose, misroute or
// mis-authenticate messages), and raise kpipev1.PodContractVersion to its version. A field
// that is safe to ignore gets no row: older runtimes skip it and report it as unknown.
var contractFields = []contractField{}

// RequiredContract is the pod contract version a pipeline's pods must honour to run spec
// (rendered into KPIPE_POD_CONTRACT), and the fields that raise it above 1, by path. A spec
// that uses none of contractFields needs version 1: any runtime that reads the contract.
func RequiredContract(spec *kpipev1.KafkaPipelineSpec) (version int, fields []string) {
	return requiredContract(spec, contractFields)
}

func requiredContract(spec *kpipev1.KafkaPipelineSpec, table []contractField) (int, []string) {
	version := 1
	var fields []string
	for _, f := range table {
		if f.since <= 1 || !f.used(spec) {
			continue
		}
		version = max(version, f.since)
		fields = append(fields, f.path)
	}
	slices.Sort(fields)
	return version, fields
}
