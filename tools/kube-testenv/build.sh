#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go module proxy, so tests and the
# sandbox run a real control plane with no binary downloads.
#
#   build.sh [OUT_DIR]                      build both binaries (default OUT_DIR: <repo>/.tools/bin)
#   build.sh --set-version vX.Y.Z [OUT_DIR] first re-pin k8s.io/kubernetes and regenerate the
#                                           staging replaces in go.mod/go.sum, then build
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, ...) at v0.0.0 and
# maps them to ./staging with replace directives the proxy does not honour; the
# replaces in go.mod point each one at its published v0.X.Y tag instead.
# The Go module and build caches stay at Go's defaults, so clones share them.
set -euo pipefail

module_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$module_dir/../.." && pwd)
cd "$module_dir"

new_version=''
if [[ ${1:-} == --set-version ]]; then
  new_version=${2:?--set-version needs a version such as v1.37.2}
  shift 2
fi
out_dir=${1:-$repo_root/.tools/bin}

command -v go >/dev/null || { echo "build.sh: go is not on PATH (Go >= $(awk '$1=="go"{print $2}' go.mod) is needed)" >&2; exit 1; }

regenerate_replaces() {
  local k8s=$1 staging="v0.${1#v1.}"
  go mod edit -require="k8s.io/kubernetes@$k8s"
  local upstream_go_mod
  upstream_go_mod=$(go mod download -json "k8s.io/kubernetes@$k8s" | awk -F'"' '$2=="GoMod"{print $4}')
  # Drop the old staging replaces first: the staging list changes between releases.
  local m
  for m in $(go mod edit -json | awk -F'"' '$2=="Old"{getline; print $4}' | grep '^k8s\.io/' || true); do
    go mod edit -dropreplace="$m"
  done
  for m in $(awk '$2=="v0.0.0" && $1 ~ /^k8s\.io\// {print $1}' "$upstream_go_mod"); do
    go mod edit -replace="$m=$m@$staging"
  done
  go mod tidy
}

if [[ -n $new_version ]]; then
  echo "[kube-testenv] pinning k8s.io/kubernetes $new_version and regenerating replaces"
  regenerate_replaces "$new_version"
fi

k8s_version=$(awk '$1=="k8s.io/kubernetes"{print $2}' go.mod)
minor=$(cut -d. -f2 <<<"$k8s_version")
mkdir -p "$out_dir"
export CGO_ENABLED=0

# Build into temporary names and rename at the end, so an interrupted build
# never leaves a binary that looks complete.
echo "[kube-testenv] go build kube-apiserver $k8s_version"
go build -trimpath -o "$out_dir/.kube-apiserver.partial" \
  -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
  ./cmd/kube-apiserver
echo "[kube-testenv] go build etcd"
go build -trimpath -o "$out_dir/.etcd.partial" -ldflags "-s -w" ./cmd/etcd
mv -f "$out_dir/.kube-apiserver.partial" "$out_dir/kube-apiserver"
mv -f "$out_dir/.etcd.partial" "$out_dir/etcd"
