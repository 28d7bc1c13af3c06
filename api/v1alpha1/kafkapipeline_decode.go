package v1alpha1

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
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
