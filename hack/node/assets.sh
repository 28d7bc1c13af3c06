#!/usr/bin/env bash
# Prints the directory holding the node's binaries (kubelet, kube-controller-manager,
# kube-scheduler, kube-proxy, coredns, crictl, helm), building the missing ones from the Go module
# proxy the first time (10 to 20 minutes on 2 cores; later runs reuse bin/).
#
# Like hack/envtest-assets.sh: the Kubernetes version follows k8s.io/api in go.mod, falling back
# to the newest patch release of the same minor version that the module proxy serves, and the
# binaries are built from a throw-away module that requires k8s.io/kubernetes with every
# ./staging replace pinned, CGO_ENABLED=0 and the version ldflags. kube-apiserver, etcd and
# kubectl are not built here: they are envtest's (hack/envtest-assets.sh).
#
# Progress goes to stderr; the only line on stdout is the directory. Builds run under nice.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

say() { echo "node-assets: $*" >&2; }
# shellcheck source=../lib/k8s.sh
source "$root/hack/lib/k8s.sh"

api=$(go list -m -f '{{.Version}}' k8s.io/api)
want="1${api#v0}"
minor=${want%.*}
os=$(go env GOOS)
arch=$(go env GOARCH)
coredns_version=${COREDNS_VERSION:-v1.15.0}
# helm v4, whose Kubernetes modules match the envtest version (the build reuses their compile cache).
helm_version=${HELM_VERSION:-v4.3.2}
crictl_version=${CRICTL_VERSION:-v1.37.0}
k8s_bins=(kubelet kube-controller-manager kube-scheduler kube-proxy)

# The newest release built already, else the newest one the module proxy serves.
k8s=""
for ((p = ${want##*.}; p >= 0; p--)); do
  d="$root/bin/node/$minor.$p-$os-$arch"
  if [ -x "$d/kubelet" ] && [ -x "$d/kube-proxy" ]; then k8s=$minor.$p; break; fi
done
if [ -z "$k8s" ]; then
  k8s=$(k8s_release_from_proxy "$want")
fi
staging="v0${k8s#1}"
out="$root/bin/node/$k8s-$os-$arch"
mkdir -p "$out"
ldflags=$(k8s_ldflags "$k8s")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

gobuild() { # $1 = package, $2 = output, $3 = ldflags
  CGO_ENABLED=0 nice -n 19 go build -trimpath -ldflags "$3" -o "$2.tmp" "$1" >&2
  mv "$2.tmp" "$2"
}

# One module with a main per component: each cmd/<name>/*.go of k8s.io/kubernetes copied in.
k8s_module() {
  local src
  mkdir -p "$work/k8s"
  cd "$work/k8s"
  printf 'module kpipe.local/nodebins\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes v%s\n' "$k8s" >go.mod
  go mod download -json "k8s.io/kubernetes@v$k8s" >/dev/null
  grep -E '=> \./staging/' "$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v$k8s.mod" |
    awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}' >>go.mod
  src="$(go env GOMODCACHE)/k8s.io/kubernetes@v$k8s/cmd"
  for b in "${k8s_bins[@]}"; do
    mkdir -p "$b"
    cp "$src/$b"/*.go "$b/"
    chmod u+w "$b"/*.go
    rm -f "$b"/*_test.go
  done
  go mod tidy >&2
}

missing=()
for b in "${k8s_bins[@]}"; do [ -x "$out/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "building ${missing[*]} v$k8s from the Go module proxy into $out (once; kubelet alone takes about 6 minutes on 2 cores)"
  (
    k8s_module
    for b in "${missing[@]}"; do
      say "  $b v$k8s"
      gobuild "./$b" "$out/$b" "$ldflags"
    done
  )
fi

# CoreDNS with only the plugins the cluster's Corefile uses (a fraction of the full build).
if [ ! -x "$out/coredns" ]; then
  say "building coredns $coredns_version (kubernetes, errors, health, ready, cache, log plugins)"
  (
    mkdir -p "$work/coredns" && cd "$work/coredns"
    printf 'module kpipe.local/coredns\n\ngo 1.26.0\n' >go.mod
    cat >main.go <<'EOM'
package main

import (
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"

	"github.com/coredns/coredns/coremain"
)

func main() { coremain.Run() }
EOM
    # Its Kubernetes modules at the envtest version: the compile cache of the builds above serves.
    go get "github.com/coredns/coredns@$coredns_version" "k8s.io/client-go@$staging" "k8s.io/api@$staging" \
      "k8s.io/apimachinery@$staging" >&2
    go mod tidy >&2
    gobuild . "$out/coredns" "-s -w"
  )
fi

if [ ! -x "$out/crictl" ]; then
  say "building crictl $crictl_version"
  CGO_ENABLED=0 GOBIN="$work/gobin" nice -n 19 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$crictl_version" >&2
  mv "$work/gobin/crictl" "$out/crictl"
fi

if [ ! -x "$out/helm" ]; then
  say "building helm $helm_version"
  CGO_ENABLED=0 GOBIN="$work/gobin" nice -n 19 go install -trimpath -ldflags "-s -w" "helm.sh/helm/v4/cmd/helm@$helm_version" >&2
  mv "$work/gobin/helm" "$out/helm"
fi

echo "$out"
