package runtime

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestHTTPProcessorHeadersFromSecret: the keys of headersSecretRef, mounted as files, go with
// every POST; a service that refuses them sees the message dead-lettered with an error that
// does not carry the token, even when the service echoes it.
func TestHTTPProcessorHeadersFromSecret(t *testing.T) {
	g := NewWithT(t)
	var authorized, refused atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer tok-s3cr3t" && r.Header.Get("X-Tenant") == "shop" {
			authorized.Add(1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		refused.Add(1)
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("forbidden: " + r.Header.Get("Authorization")))
	}))
	defer srv.Close()

	tc := newTestCluster(t, map[string]int32{"in": 1, "dlq": 1})
	var recs []*kgo.Record
	for i := range 5 {
		recs = append(recs, &kgo.Record{Topic: "in", Value: []byte(strconv.Itoa(i))})
	}
	g.Expect(tc.cl.ProduceSync(t.Context(), recs...).FirstErr()).To(Succeed())

	spec := tc.baseSpec("http-headers")
	spec["processor"] = map[string]any{"http": map[string]any{"url": srv.URL, "headersSecretRef": map[string]any{"name": "sink-auth"}}}
	spec["deadLetter"] = map[string]any{"topic": "dlq"}
	dir := writeFiles(t, map[string]string{"Authorization": "Bearer tok-s3cr3t\n", "X-Tenant": "shop", "..data": "kubelet's"})
	cfg, err := LoadConfig(specJSON(t, spec), SecretDirs{HTTPHeaders: dir})
	g.Expect(err).NotTo(HaveOccurred())
	r := startConfig(t, cfg)
	tc.expectCommittedAtEnd(g, "http-headers", "in")
	r.stop(t)
	g.Expect(authorized.Load()).To(BeEquivalentTo(5))
	g.Expect(refused.Load()).To(BeZero())

	// The same pipeline with a wrong token: every message is refused and dead-lettered, and the
	// echoed token is masked.
	wrong := writeFiles(t, map[string]string{"Authorization": "Bearer tok-wrong-one", "X-Tenant": "shop"})
	spec["group"] = "http-headers-wrong"
	cfg, err = LoadConfig(specJSON(t, spec), SecretDirs{HTTPHeaders: wrong})
	g.Expect(err).NotTo(HaveOccurred())
	r = startConfig(t, cfg)
	dead := tc.readAll("dlq", 5, time.Minute)
	r.stop(t)
	for _, d := range dead {
		g.Expect(d.headers[HeaderError]).To(ContainSubstring("403 Forbidden: forbidden: [redacted]"))
		g.Expect(d.headers[HeaderError]).NotTo(ContainSubstring("tok-wrong-one"))
	}
}

func TestHTTPHeadersProblems(t *testing.T) {
	g := NewWithT(t)
	spec := map[string]any{
		"kafka": map[string]any{"bootstrapServers": []string{"kafka:9092"}}, "topics": []string{"in"}, "group": "g",
		"processor": map[string]any{"http": map[string]any{"url": "https://sink.example/hook", "headersSecretRef": map[string]any{"name": "sink-auth"}}},
	}
	for _, c := range []struct {
		files map[string]string
		want  string
	}{
		{map[string]string{"Kpipe-Topic": "x"}, `key "Kpipe-Topic" is a header kpipe sets itself`},
		{map[string]string{"content-type": "text/plain"}, `key "content-type" is a header kpipe sets itself`},
		{map[string]string{"Bad Name": "x"}, `key "Bad Name" is not a valid HTTP header name`},
		{map[string]string{"X-Token": "line1\nline2"}, `the value of key "X-Token" is not a valid HTTP header value`},
		{map[string]string{}, `Secret "sink-auth" mounted at`},
	} {
		_, err := LoadConfig(specJSON(t, spec), SecretDirs{HTTPHeaders: writeFiles(t, c.files)})
		g.Expect(err).To(MatchError(ContainSubstring(c.want)))
		g.Expect(err.Error()).To(ContainSubstring("spec.processor.http.headersSecretRef"))
		g.Expect(err.Error()).NotTo(ContainSubstring("line1"))
	}
	_, err := LoadConfig(specJSON(t, spec), SecretDirs{HTTPHeaders: "/nonexistent/kpipe"})
	g.Expect(err).To(MatchError(ContainSubstring(`Secret "sink-auth" is not mounted at /nonexistent/kpipe`)))
	g.Expect(strings.Count(err.Error(), "\n  - ")).To(Equal(1), "one problem, one line")
}
