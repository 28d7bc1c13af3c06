package v1alpha1

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	k8sjson "sigs.k8s.io/json"
)

// ParseSpec decodes a KafkaPipelineSpec from JSON strictly: an unknown or repeated field is an
// error naming it, as the API server's strict field validation does, and so is a duration that
// does not parse. It neither defaults nor validates; see Default and Validate.
func ParseSpec(data []byte) (*KafkaPipelineSpec, error) {
	var spec KafkaPipelineSpec
	strict, err := k8sjson.UnmarshalStrict(data, &spec)
	if err != nil {
		if named := badDurations(data); named != nil {
			return nil, named
		}
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

// DecodeSpec decodes a KafkaPipelineSpec from JSON leniently, as a pod does: a field this
// version of the types does not know is returned by path in unknown (for example
// "processor.http.newOption") and otherwise ignored, so a runtime built against older types
// keeps running under a newer operator. A repeated field, a value of the wrong type and a
// duration that does not parse are still errors naming the field: those are mistakes, not a
// newer schema. Whether an unknown field may be ignored is the pod contract's business (see
// RequiredContract), not the decoder's.
func DecodeSpec(data []byte) (spec *KafkaPipelineSpec, unknown []string, err error) {
	var s KafkaPipelineSpec
	strict, err := k8sjson.UnmarshalStrict(data, &s)
	if err != nil {
		if named := badDurations(data); named != nil {
			return nil, nil, named
		}
		return nil, nil, fmt.Errorf("decode pipeline spec: %w", err)
	}
	var dups []string
	for _, e := range strict {
		path := e.Error()
		if fp, ok := e.(interface{ FieldPath() string }); ok {
			path = fp.FieldPath()
		}
		if strings.HasPrefix(e.Error(), "unknown field") {
			unknown = append(unknown, path)
			continue
		}
		dups = append(dups, "spec: "+e.Error())
	}
	if len(dups) > 0 {
		return nil, nil, errors.New(strings.Join(dups, "; "))
	}
	slices.Sort(unknown)
	return &s, slices.Compact(unknown), nil
}

var durationType = reflect.TypeFor[time.Duration]()

// badDurations names every duration field of the JSON spec whose value does not parse, since
// the decoder's own error does not say which field it was.
func badDurations(data []byte) error {
	var doc map[string]any
	if json.Unmarshal(data, &doc) != nil {
		return nil
	}
	var errs []error
	walkDurations(reflect.TypeFor[KafkaPipelineSpec](), doc, "spec", &errs)
	return errors.Join(errs...)
}

func walkDurations(t reflect.Type, v any, path string, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	obj, ok := v.(map[string]any)
	if t.Kind() != reflect.Struct || !ok {
		return
	}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		val, present := obj[name]
		if name == "" || !present {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft.NumField() == 1 && ft.Field(0).Type == durationType {
			s, isString := val.(string)
			if _, err := time.ParseDuration(s); !isString || err != nil {
				*errs = append(*errs, fmt.Errorf("%s.%s: invalid duration %q: use a value such as 30s, 5m or 1h30m", path, name, fmt.Sprint(val)))
			}
			continue
		}
		walkDurations(ft, val, path+"."+name, errs)
	}
}
