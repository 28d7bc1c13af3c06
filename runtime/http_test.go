package runtime

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestHTTPProcessor POSTs messages to a service that answers by key: "ok" keys 200,
// "busy" keys 503 twice then 200, "gone" keys 404 (dead letter at once).
func TestHTTPProcessor(t *testing.T) {
	g := NewWithT(t)
	type request struct {
		header http.Header
		body   string
	}
	var (
		mu       sync.Mutex
		requests = map[string][]request{} // by value
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		requests[string(body)] = append(requests[string(body)], request{r.Header.Clone(), string(body)})
		tries := len(requests[string(body)])
		mu.Unlock()
		switch key := r.Header.Get(HTTPHeaderKey); {
		case r.Method != http.MethodPost:
			w.WriteHeader(http.StatusMethodNotAllowed)
		case key == "gone":
			http.Error(w, "no such thing", http.StatusNotFound)
		case key == "busy" && tries <= 2:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()

	tc := newTestCluster(t, map[string]int32{"in": 1, "dlq": 1})
	keys := []string{"ok", "busy", "gone"}
	var recs []*kgo.Record
	for i := range 30 {
		recs = append(recs, &kgo.Record{Topic: "in", Key: []byte(keys[i%3]), Value: []byte(strconv.Itoa(i)),
			Headers: []kgo.RecordHeader{{Key: "trace-id", Value: []byte("t" + strconv.Itoa(i))}, {Key: "bin", Value: []byte{0, 1}}}})
	}
	g.Expect(tc.cl.ProduceSync(t.Context(), recs...).FirstErr()).To(Succeed())

	spec := tc.baseSpec("http")
	spec["processor"] = map[string]any{"http": map[string]any{"url": srv.URL + "/handle", "timeout": "2s"}}
	spec["deadLetter"] = map[string]any{"topic": "dlq"}
	r := start(t, specJSON(t, spec))
	dead := tc.readAll("dlq", 10, time.Minute)
	tc.expectCommittedAtEnd(g, "http", "in")
	r.stop(t)

	g.Expect(dead).To(HaveLen(10))
	for _, d := range dead {
		g.Expect(d.key).To(Equal("gone"))
		g.Expect(d.headers).To(HaveKeyWithValue(HeaderAttempts, "1"), "a 404 is not retried")
		g.Expect(d.headers[HeaderError]).To(ContainSubstring("404"))
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range 30 {
		v := strconv.Itoa(i)
		reqs := requests[v]
		want := map[string]int{"ok": 1, "busy": 3, "gone": 1}[keys[i%3]]
		g.Expect(reqs).To(HaveLen(want), "requests for %s (key %s)", v, keys[i%3])
		h := reqs[len(reqs)-1].header
		g.Expect(h.Get(HTTPHeaderTopic)).To(Equal("in"))
		g.Expect(h.Get(HTTPHeaderPartition)).To(Equal("0"))
		g.Expect(h.Get(HTTPHeaderOffset)).To(Equal(v)) // one partition: offset i holds value i
		g.Expect(h.Get(HTTPHeaderAttempt)).To(Equal(strconv.Itoa(want)))
		g.Expect(h.Get(HTTPHeaderPrefix + "trace-id")).To(Equal("t" + v))
		g.Expect(h.Get(HTTPHeaderPrefix + "Base64-bin")).To(Equal("AAE="))
	}
}
