package runtime

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/net/http/httpguts"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// reservedHeader says whether a header name is kpipe's own, which a Secret may not set: the
// message's coordinates and its body's type come from the message.
func reservedHeader(name string) bool {
	canonical := http.CanonicalHeaderKey(name)
	return strings.HasPrefix(canonical, HTTPHeaderPrefix[:len("Kpipe-")]) || canonical == "Content-Type"
}

// loadHTTPHeaders reads the request headers of spec.processor.http.headersSecretRef from the
// Secret mounted at dir: one file per header, named after it. The files kubelet adds to a
// Secret volume (names starting with a dot) are not headers. Problems name the file, never
// its contents.
func loadHTTPHeaders(spec *kpipev1.HTTPProcessor, dir string) (http.Header, []string) {
	if spec == nil || spec.HeadersSecretRef == nil {
		return nil, nil
	}
	const where = "spec.processor.http.headersSecretRef"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, []string{fmt.Sprintf("%s: Secret %q is not mounted at %s: %v", where, spec.HeadersSecretRef.Name, dir, err)}
	}
	headers := http.Header{}
	var problems []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		value := strings.TrimRight(string(b), "\r\n")
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: read %s: %v", where, path, err))
		case !httpguts.ValidHeaderFieldName(name):
			problems = append(problems, fmt.Sprintf("%s: key %q is not a valid HTTP header name", where, name))
		case reservedHeader(name):
			problems = append(problems, fmt.Sprintf("%s: key %q is a header kpipe sets itself", where, name))
		case !httpguts.ValidHeaderFieldValue(value):
			problems = append(problems, fmt.Sprintf("%s: the value of key %q is not a valid HTTP header value", where, name))
		default:
			headers.Add(name, value)
		}
	}
	if len(problems) == 0 && len(headers) == 0 {
		problems = append(problems, fmt.Sprintf("%s: Secret %q mounted at %s has no keys", where, spec.HeadersSecretRef.Name, dir))
	}
	return headers, problems
}
