package v1alpha1

import (
	"errors"
	"fmt"
	"strings"

	"sigs.k8s.io/json"
)

// ParseSpec decodes a KafkaPipelineSpec from JSON strictly: an unknown or repeated field is an
// error naming it, as the API server's strict field validation does. It neither defaults nor
// validates; see Default and Validate.
func ParseSpec(data []byte) (*KafkaPipelineSpec, error) {
	var spec KafkaPipelineSpec
	strict, err := json.UnmarshalStrict(data, &spec)
	if err != nil {
		return nil, fmt.Errorf("decode pipeline spec: %w", err)
	}
	if len(strict) > 0 {
		msgs := make([]string, 0, len(strict))
		for _, e := range strict {
			msgs = append(msgs, "spec: "+e.Error())
		}
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	return &spec, nil
}
