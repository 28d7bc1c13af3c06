#!/usr/bin/env bash
# Prints the directory holding kube-apiserver, etcd and kubectl for envtest, building them from
# the Go module proxy the first time (5 to 10 minutes on 2 cores; later runs reuse bin/).
#
# The Kubernetes version follows k8s.io/api in go.mod (v0.37.2 -> 1.37.2). Where binaries are
# looked for, in order:
#   1. $KUBEBUILDER_ASSETS, when it holds kube-apiserver and etcd;
#   2. setup-envtest's store, ~/.local/share/kubebuilder-envtest/k8s/<version>-<os>-<arch>;
#   3. bin/k8s/<version>-<os>-<arch> in this repository.
# Each version is tried from go.mod's patch release down to .0 of the same minor version (the
# API is the same within a minor version), and the build, when one is needed, takes the newest
# of those releases that the module proxy serves.
#
# Progress goes to stderr; the only line on stdout is the directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { echo "envtest-assets: $*" >&2; }
# shellcheck source=lib/k8s.sh
source "$root/hack/lib/k8s.sh"
have() { [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ]; }

api=$(go list -m -f '{{.Version}}' k8s.io/api)
want="1${api#v0}"
minor=${want%.*}
os=$(go env GOOS)
arch=$(go env GOARCH)
etcd_version=${ETCD_VERSION:-v3.6.16}
store="$HOME/.local/share/kubebuilder-envtest/k8s"

dir=""
k8s=""
if [ -n "${KUBEBUILDER_ASSETS:-}" ] && have "$KUBEBUILDER_ASSETS"; then
  dir=$KUBEBUILDER_ASSETS
  k8s=$want
else
  for ((p = ${want##*.}; p >= 0; p--)); do
    for d in "$store/$minor.$p-$os-$arch" "$root/bin/k8s/$minor.$p-$os-$arch"; do
      if have "$d"; then dir=$d; k8s=$minor.$p; break 2; fi
    done
  done
fi

if [ -z "$k8s" ]; then
  k8s=$(k8s_release_from_proxy "$want")
fi
staging="v0${k8s#1}"
out="$root/bin/k8s/$k8s-$os-$arch"
ldflags=$(k8s_ldflags "$k8s")

# Writes a module in $1 that builds kube-apiserver (./apiserver) and kubectl (./kubectl) from
# k8s.io/kubernetes, with every k8s.io/<staging> module it points at ./staging sent to v0.Y.Z.
k8s_module() {
  local work=$1
  mkdir -p "$work/apiserver" "$work/kubectl"
  cd "$work"
  printf 'module kpipe.local/k8sbins\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes v%s\n' "$k8s" >go.mod
  go mod download -json "k8s.io/kubernetes@v$k8s" >/dev/null
  grep -E '=> \./staging/' "$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v$k8s.mod" |
    awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}' >>go.mod
  cat >apiserver/main.go <<'EOM'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
EOM
  cat >kubectl/main.go <<'EOM'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
)

func main() { os.Exit(cli.Run(cmd.NewDefaultKubectlCommand())) }
EOM
  go mod tidy >&2
}

build() { # $1 = ./apiserver or ./kubectl, $2 = output
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$2" "$1" >&2
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -z "$dir" ]; then
  say "no kube-apiserver/etcd for Kubernetes $k8s found; building them from the Go module proxy into $out"
  say "this happens once and takes 5 to 10 minutes on 2 cores; later runs reuse bin/"
  mkdir -p "$out" "$work/etcd"
  say "[1/3] etcd $etcd_version"
  (
    cd "$work/etcd"
    printf 'module kpipe.local/etcd\n\ngo 1.26.0\n' >go.mod
    cat >main.go <<'EOM'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOM
    go get "go.etcd.io/etcd/server/v3@$etcd_version" >&2
    go mod tidy >&2
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcd" . >&2
  )
  say "[2/3] kube-apiserver v$k8s"
  (k8s_module "$work/k8s" && build ./apiserver "$out/kube-apiserver")
  say "[3/3] kubectl v$k8s"
  (cd "$work/k8s" && build ./kubectl "$out/kubectl")
  dir=$out
  say "done: $dir"
fi

# A version-matched kubectl beside the binaries. When they come from elsewhere without one,
# bin/ gets links to them and a kubectl built here, and that directory is the answer.
if [ ! -x "$dir/kubectl" ]; then
  mkdir -p "$out"
  if [ ! -x "$out/kubectl" ]; then
    say "building kubectl v$k8s into $out (once)"
    (k8s_module "$work/k8s" && build ./kubectl "$out/kubectl")
  fi
  if [ "$dir" != "$out" ]; then
    ln -sf "$dir/kube-apiserver" "$out/kube-apiserver"
    ln -sf "$dir/etcd" "$out/etcd"
    dir=$out
  fi
fi

echo "$dir"
