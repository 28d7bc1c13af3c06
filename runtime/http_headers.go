package runtime

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/internal/httpheaders"
)

// loadHTTPHeaders reads the request headers of spec.processor.http.headersSecretRef from the
// Secret mounted at dir: one file per header, named after it. The files kubelet adds to a
// Secret volume (names starting with a dot) are not headers. Problems name the file or key,
// never a value.
func loadHTTPHeaders(spec *kpipev1.HTTPProcessor, dir string) (http.Header, []string) {
	if spec == nil || spec.HeadersSecretRef == nil {
		return nil, nil
	}
	const where = "spec.processor.http.headersSecretRef"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, []string{fmt.Sprintf("%s: Secret %q is not mounted at %s: %v", where, spec.HeadersSecretRef.Name, dir, err)}
	}
	data := map[string][]byte{}
	var problems []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: read %s: %v", where, path, err))
			continue
		}
		data[e.Name()] = b
	}
	if len(problems) > 0 {
		return nil, problems
	}
	headers, err := httpheaders.FromSecret(data)
	var joined interface{ Unwrap() []error }
	switch {
	case errors.As(err, &joined):
		for _, e := range joined.Unwrap() {
			problems = append(problems, fmt.Sprintf("%s: %v (Secret %q mounted at %s)", where, e, spec.HeadersSecretRef.Name, dir))
		}
	case err != nil:
		problems = append(problems, fmt.Sprintf("%s: Secret %q mounted at %s: %v", where, spec.HeadersSecretRef.Name, dir, err))
	}
	return headers, problems
}
