package manager

import (
	"crypto/tls"

	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// metricsOptions serves /metrics as the kubebuilder scaffold does when MetricsSecure is set:
// over HTTPS (a self-signed certificate generated at start), each request authenticated with
// a TokenReview and authorized with a SubjectAccessReview for "get" on the /metrics URL
// (config/rbac/metrics_auth_role.yaml lets the operator ask; metrics_reader_role.yaml is what
// a scraper needs). No token: 401; a token without the role: 403. HTTP/2 is off, as in the
// scaffold, against the HTTP/2 stream-reset attacks (CVE-2023-44487, CVE-2023-39325).
func metricsOptions(o Options) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: orOff(o.MetricsAddr)}
	if o.MetricsSecure {
		opts.SecureServing = true
		opts.FilterProvider = filters.WithAuthenticationAndAuthorization
		opts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	return opts
}
