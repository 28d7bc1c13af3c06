package v1alpha1

import (
	"slices"
	"strings"
	"testing"
)

const decodeBase = `"kafka":{"bootstrapServers":["kafka:9092"]},"topics":["in"],"group":"g"`

// A spec from a newer operator decodes in an older runtime: the fields it does not know are
// named, by path, and the rest of the spec is intact.
func TestDecodeSpecReportsUnknownFields(t *testing.T) {
	spec, unknown, err := DecodeSpec([]byte(`{` + decodeBase + `,"futureTopLevel":{"a":1},` +
		`"processor":{"forward":{"topic":"out","compression":"zstd"}},"pool":{"size":3,"affinity":"numa"}}`))
	if err != nil {
		t.Fatalf("DecodeSpec: %v", err)
	}
	want := []string{"futureTopLevel", "pool.affinity", "processor.forward.compression"}
	if !slices.Equal(unknown, want) {
		t.Errorf("unknown = %q, want %q", unknown, want)
	}
	if spec.Processor.Forward == nil || spec.Processor.Forward.Topic != "out" || spec.Pool.Size == nil || *spec.Pool.Size != 3 {
		t.Errorf("known fields lost: %+v", spec)
	}
	// The strict decoder, which the API's tests use, still refuses the same document.
	if _, err := ParseSpec([]byte(`{` + decodeBase + `,"futureTopLevel":1}`)); err == nil || !strings.Contains(err.Error(), `unknown field "futureTopLevel"`) {
		t.Errorf("ParseSpec: %v", err)
	}
}

// Mistakes stay errors that name the field: a repeated field, a value of the wrong type, a
// duration that does not parse.
func TestDecodeSpecKeepsMistakesFatal(t *testing.T) {
	for _, tt := range []struct{ name, doc, want string }{
		{"duplicate", `{` + decodeBase + `,"group":"h"}`, `duplicate field "group"`},
		{"duplicate beside an unknown field", `{` + decodeBase + `,"newField":1,"topics":["x"]}`, `duplicate field "topics"`},
		{"wrong type", `{` + decodeBase + `,"pool":{"size":"three"}}`, "pool.size"},
		{"bad duration", `{` + decodeBase + `,"idle":{"window":"soon"}}`, `spec.idle.window: invalid duration "soon"`},
		{"not JSON", `{` + decodeBase, "decode pipeline spec"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := DecodeSpec([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}
