package manager

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

type fakeCache struct{ synced bool }

func (f fakeCache) WaitForCacheSync(ctx context.Context) bool {
	if !f.synced {
		<-ctx.Done() // as the informer cache does while it has not synced
	}
	return f.synced
}

func TestReadyzFollowsCacheSync(t *testing.T) {
	for _, tc := range []struct {
		synced   bool
		code     int
		contains string
	}{
		{synced: false, code: http.StatusInternalServerError, contains: "[-]" + ReadyzCheck + " failed"},
		{synced: true, code: http.StatusOK, contains: "ok"},
	} {
		h := &healthz.Handler{Checks: map[string]healthz.Checker{ReadyzCheck: cachesSynced(fakeCache{synced: tc.synced})}}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil)) // mounted at /readyz by the manager
		body, _ := io.ReadAll(rec.Result().Body)
		if rec.Code != tc.code || !strings.Contains(string(body), tc.contains) {
			t.Errorf("synced=%v: got %d %q, want %d containing %q", tc.synced, rec.Code, body, tc.code, tc.contains)
		}
	}
}
