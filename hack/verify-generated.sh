#!/usr/bin/env bash
# Fails when the generated files (deepcopy, CRD, RBAC) differ from what `make generate
# manifests` produces now: regenerate into a scratch copy and compare.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
generated=(api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac/role.yaml)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for p in "${generated[@]}"; do
  mkdir -p "$scratch/$(dirname "$p")"
  cp -r "$p" "$scratch/$p"
done
make -s generate manifests >/dev/null
stale=0
for p in "${generated[@]}"; do
  if ! diff -r "$scratch/$p" "$p" >/dev/null; then
    echo "stale generated file: $p (run 'make generate manifests' and commit the result)" >&2
    diff -r "$scratch/$p" "$p" | head -20 >&2 || true
    stale=1
  fi
done
if [ "$stale" = 1 ]; then
  # Put the committed versions back so the check does not change the tree.
  for p in "${generated[@]}"; do rm -rf "$p"; cp -r "$scratch/$p" "$p"; done
  exit 1
fi
echo "generated files are up to date"
