// Package httpheaders turns the keys of the Secret that spec.processor.http.headersSecretRef
// names into request headers. The operator checks a Secret with it before pods mount it; the
// runtime builds its headers with it from the mounted files. Errors name keys, never values.
package httpheaders

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// reserved says whether a header is kpipe's own, which a Secret may not set: the message's
// coordinates and its body's type come from the message.
func reserved(name string) bool {
	canonical := http.CanonicalHeaderKey(name)
	return strings.HasPrefix(canonical, "Kpipe-") || canonical == "Content-Type"
}

// FromSecret builds the headers from a Secret's data, one header per key. A trailing newline,
// which files written by hand tend to have, is not part of a value.
func FromSecret(data map[string][]byte) (http.Header, error) {
	if len(data) == 0 {
		return nil, errors.New("the Secret has no keys: each key is a request header")
	}
	headers := http.Header{}
	var problems []error
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, name := range keys {
		value := strings.TrimRight(string(data[name]), "\r\n")
		switch {
		case !httpguts.ValidHeaderFieldName(name):
			problems = append(problems, fmt.Errorf("key %q is not a valid HTTP header name", name))
		case reserved(name):
			problems = append(problems, fmt.Errorf("key %q is a header kpipe sets itself", name))
		case !httpguts.ValidHeaderFieldValue(value):
			problems = append(problems, fmt.Errorf("the value of key %q is not a valid HTTP header value", name))
		default:
			headers.Add(name, value)
		}
	}
	return headers, errors.Join(problems...)
}
