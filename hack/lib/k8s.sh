# Shared by hack/envtest-assets.sh and hack/node/assets.sh, which build Kubernetes binaries
# from the Go module proxy. Source it; the caller defines say().

# k8s_release_from_proxy WANT prints the newest k8s.io/kubernetes release of WANT's minor
# version, from WANT's patch down to .0, that the module proxy serves (the proxy may refuse a
# release; the API is the same within a minor version). It fails when there is none.
k8s_release_from_proxy() {
  local want=$1 minor=${1%.*} p
  for ((p = ${want##*.}; p >= 0; p--)); do
    if go mod download "k8s.io/kubernetes@v$minor.$p" >/dev/null 2>&1; then echo "$minor.$p"; return 0; fi
    say "the module proxy does not serve k8s.io/kubernetes v$minor.$p; trying an earlier patch release"
  done
  say "no k8s.io/kubernetes v$minor.x release is available from the module proxy"
  return 1
}

# k8s_ldflags VERSION prints the -ldflags that stamp a binary with its Kubernetes version, so
# that `--version` and the version the API server reports are right.
k8s_ldflags() {
  local k8s=$1 pkg flags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=v$k8s -X $pkg.gitMajor=${k8s%%.*} -X $pkg.gitMinor=$(cut -d. -f2 <<<"$k8s")"
  done
  echo "$flags"
}
