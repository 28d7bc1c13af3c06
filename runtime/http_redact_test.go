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

// TestHTTPProcessorRedirectsAndRedaction: a redirect within the configured host is followed; a
// redirect to another host is not (the other host sees nothing and the message goes to the
// dead-letter topic, not retried); and no error, in the logs or the dead-letter headers,
// carries the URL's query or more than a short excerpt of the response. (The API refuses
// userinfo in the URL; TestRedactedURL covers it.)
func TestHTTPProcessorRedirectsAndRedaction(t *testing.T) {
	g := NewWithT(t)
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer other.Close()
	var handled atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch key := r.Header.Get(HTTPHeaderKey); {
		case r.URL.Path == "/in" && key == "move":
			http.Redirect(w, r, "/handle?token=s3cr3t-token", http.StatusTemporaryRedirect)
		case r.URL.Path == "/in" && key == "away":
			http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
		case r.URL.Path == "/in" && key == "echo":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte("bad request to " + r.URL.String() + " " + strings.Repeat("x", 500) + "\nsecond line"))
		case r.URL.Path == "/handle":
			handled.Add(1)
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	defer srv.Close()

	tc := newTestCluster(t, map[string]int32{"in": 1, "dlq": 1})
	var recs []*kgo.Record
	for i, k := range []string{"move", "away", "echo"} {
		recs = append(recs, &kgo.Record{Topic: "in", Key: []byte(k), Value: []byte(strconv.Itoa(i))})
	}
	g.Expect(tc.cl.ProduceSync(t.Context(), recs...).FirstErr()).To(Succeed())

	spec := tc.baseSpec("http-redirects")
	url := srv.URL + "/in?token=s3cr3t-token"
	spec["processor"] = map[string]any{"http": map[string]any{"url": url, "timeout": "2s"}}
	spec["deadLetter"] = map[string]any{"topic": "dlq"}
	r := start(t, specJSON(t, spec))
	dead := tc.readAll("dlq", 2, time.Minute)
	tc.expectCommittedAtEnd(g, "http-redirects", "in")
	r.stop(t)

	g.Expect(handled.Load()).To(BeEquivalentTo(1), "the same-host redirect is followed")
	g.Expect(elsewhere.Load()).To(BeZero(), "the other host must see nothing")
	g.Expect(dead).To(HaveLen(2))
	for _, d := range dead {
		msg := d.headers[HeaderError]
		g.Expect(d.headers).To(HaveKeyWithValue(HeaderAttempts, "1"), "not retried: %s", msg)
		for _, secret := range []string{"s3cr3t-token", "second line"} {
			g.Expect(msg).NotTo(ContainSubstring(secret))
		}
		g.Expect(len(msg)).To(BeNumerically("<", 200), msg)
		switch d.key {
		case "away":
			g.Expect(msg).To(ContainSubstring("redirect to another host refused"))
		case "echo":
			g.Expect(msg).To(ContainSubstring("400 Bad Request: bad request to /in?[redacted] xxx"))
		default:
			t.Errorf("unexpected dead letter %q: %s", d.key, msg)
		}
	}
}

func TestRedactedURL(t *testing.T) {
	g := NewWithT(t)
	r := newRedactedURL("https://bob:hunter2@sink.example:8443/hook?sig=abc&x=1")
	g.Expect(r.String()).To(Equal("https://sink.example:8443/hook?[redacted]"))
	g.Expect(r.excerpt([]byte("  token abc for bob:hunter2\x00\x07 é\nmore"))).To(Equal("token [redacted] for [redacted]?? ?"))
	g.Expect(r.excerpt([]byte(strings.Repeat("y", 300)))).To(HaveLen(excerptLen + len("...")))
	g.Expect(newRedactedURL("http://sink/plain").String()).To(Equal("http://sink/plain"))
}
