package manager

import (
	"context"
	"errors"
	"net/http"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

// ReadyzCheck is the name of the readiness check: /readyz answers "[-]informers-synced failed"
// until the manager's informer caches have synced, so a replica whose cache cannot list (the
// API server unreachable, a permission missing) is not reported ready. /healthz stays a
// liveness ping: restarting would not help.
const ReadyzCheck = "informers-synced"

// syncWait bounds how long one probe waits for the caches; below the kubelet's 1s probe timeout.
const syncWait = 200 * time.Millisecond

// syncer is the part of the manager's cache the check needs.
type syncer interface {
	WaitForCacheSync(ctx context.Context) bool
}

// cachesSynced passes once every informer the cache has started has synced (and the cache has
// started at all). Informers started later, by a controller that wins the leader election,
// count from then on.
func cachesSynced(c syncer) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), syncWait)
		defer cancel()
		if !c.WaitForCacheSync(ctx) {
			return errors.New("the informer caches have not synced")
		}
		return nil
	}
}
