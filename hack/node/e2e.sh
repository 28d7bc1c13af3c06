#!/usr/bin/env bash
# The node suite (test/node) on a real single-node cluster: takes the machine's node lock,
# brings the cluster up with kpipe's and Kafka's images loaded, runs the suite, and brings the
# cluster down again whatever happened (the trap also runs on Ctrl-C and on a failed up).
# `make test-node` builds what this needs first. Arguments are passed to `go test`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
images=${IMAGES:-$root/bin/images}
export KPIPE_NODE_DIR=${KPIPE_NODE_DIR:-/tmp/kpipe-node}
lock=${KPIPE_NODE_LOCK:-/tmp/kpipe-node.lock}

if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ]; then
  echo "node-e2e: skipped: the node suite needs Linux and root (it runs containerd, the kubelet and iptables)" >&2
  exit 0
fi

exec 9>"$lock"
if ! flock -w 600 9; then
  echo "node-e2e: another node cluster holds $lock; gave up after 10 minutes" >&2
  exit 1
fi

logs=$root/bin/node-e2e-logs
export KPIPE_NODE_KEEP_LOGS=$logs
trap 'hack/node/cluster.sh down || echo "node-e2e: clean-up failed; run hack/node/cluster.sh down" >&2' EXIT
trap 'exit 130' INT TERM

start=$SECONDS
hack/node/cluster.sh up "$images/kpipe.tar" "$images/kafka.tar"
echo "node-e2e: cluster up in $((SECONDS - start))s"
t=$SECONDS
KPIPE_NODE_E2E=1 KUBECONFIG=$KPIPE_NODE_DIR/kubeconfig \
  KPIPE_NODE_BIN="$(hack/node/assets.sh)" KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh)" \
  go test ./test/node -count=1 -timeout "${KPIPE_NODE_E2E_TIMEOUT:-20m}" -v "$@"
echo "node-e2e: suite took $((SECONDS - t))s; the cluster's logs are copied to $logs on the way down"
