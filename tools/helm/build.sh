#!/usr/bin/env bash
# Builds helm from the Go module proxy, so the install tests render the chart
# with a pinned helm and no binary downloads.
#
#   build.sh [OUT_DIR]                      build helm (default OUT_DIR: <repo>/.tools/bin)
#   build.sh --set-version vX.Y.Z [OUT_DIR] first re-pin helm.sh/helm/v4 in go.mod/go.sum, then build
#
# go.mod names helm's command with a `tool` directive, which keeps the module
# and its whole dependency graph pinned in go.sum; `go build` of the package
# path builds upstream's main package unchanged. The version string upstream's
# Makefile stamps from git is stamped here from go.mod (a module download has
# no git metadata). The Go module and build caches stay at Go's defaults, so
# clones share them.
set -euo pipefail

module_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$module_dir/../.." && pwd)
cd "$module_dir"

new_version=''
if [[ ${1:-} == --set-version ]]; then
  new_version=${2:?--set-version needs a version such as v4.3.2}
  shift 2
fi
out_dir=${1:-$repo_root/.tools/bin}

command -v go >/dev/null || { echo "build.sh: go is not on PATH (Go >= $(awk '$1=="go"{print $2}' go.mod) is needed)" >&2; exit 1; }

if [[ -n $new_version ]]; then
  echo "[helm] pinning helm.sh/helm/v4 $new_version"
  go get -tool "helm.sh/helm/v4/cmd/helm@$new_version"
  go mod tidy
fi

helm_version=$(awk '$1=="helm.sh/helm/v4"{print $2}' go.mod)
[[ -n $helm_version ]] || { echo "build.sh: go.mod does not require helm.sh/helm/v4" >&2; exit 1; }
mkdir -p "$out_dir"
export CGO_ENABLED=0

# Build into a temporary name and rename at the end, so an interrupted build
# never leaves a binary that looks complete.
echo "[helm] go build helm $helm_version"
pkg=helm.sh/helm/v4/internal/version
go build -trimpath -o "$out_dir/.helm.partial" \
  -ldflags "-s -w -X $pkg.version=$helm_version -X $pkg.metadata= -X $pkg.gitTreeState=clean" \
  helm.sh/helm/v4/cmd/helm
mv -f "$out_dir/.helm.partial" "$out_dir/helm"
