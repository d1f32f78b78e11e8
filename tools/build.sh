#!/usr/bin/env bash
# Build the local control plane's binaries from the pinned Go modules in tools/*/go.mod.
#
# Output goes to a cache folder outside git, keyed by a hash of the pinned module files, so
# every clone on this machine (and CI, which runs on it) reuses one build:
#   ${THRIFTY_CACHE:-$HOME/.cache/thrifty}/bin/<hash>/{etcd,kube-apiserver,...}
# The repository's ignored `.testbed/bin` becomes a symlink to that folder.
# Idempotent: a stamp file marks a finished build. Prints the bin folder on success.
set -euo pipefail

TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$TOOLS")"
CACHE="${THRIFTY_CACHE:-$HOME/.cache/thrifty}"
HASH="$(cat "$TOOLS"/*/go.mod "$TOOLS"/*/go.sum "$TOOLS/build.sh" | sha256sum | cut -c1-16)"
BIN="$CACHE/bin/$HASH"
LOG="$CACHE/build-$HASH.log"

link() {
  mkdir -p "$ROOT/.testbed"
  ln -sfn "$BIN" "$ROOT/.testbed/bin"
  echo "$BIN"
}

if [[ -f "$BIN/.complete" ]]; then
  link
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is required (go1.25 or newer)" >&2; exit 1; }
mkdir -p "$BIN" "$CACHE"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
# Two cores and ~2 GiB per link: more parallel links only thrash.
export GOMAXPROCS="${GOMAXPROCS:-2}"

k8s_version() { sed -n 's#^replace k8s.io/kubernetes => k8s.io/kubernetes \(v[0-9.]*\)$#\1#p' "$TOOLS/k8s/go.mod"; }
module_version() { # module folder, module path
  (cd "$TOOLS/$1" && go list -m -f '{{.Version}}' "$2")
}

step() { echo "==> $*" >&2; }

{
  KV="$(k8s_version)"
  MAJ="${KV#v}"; MAJ="${MAJ%%.*}"; MIN="${KV#v*.}"; MIN="${MIN%%.*}"
  X() { printf -- "-X k8s.io/component-base/version.%s=%s -X k8s.io/client-go/pkg/version.%s=%s " "$1" "$2" "$1" "$2"; }
  LDF="-s -w $(X gitVersion "$KV")$(X gitMajor "$MAJ")$(X gitMinor "$MIN")$(X gitTreeState clean)$(X buildDate 1970-01-01T00:00:00Z)"

  step "etcd"
  (cd "$TOOLS/etcd" && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)

  HV="$(module_version helm helm.sh/helm/v3)"
  step "helm $HV"
  (cd "$TOOLS/helm" && go build -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HV -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$MAJ -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$MIN" \
    -o "$BIN/helm" helm.sh/helm/v3/cmd/helm)

  step "kwok $(module_version kwok sigs.k8s.io/kwok)"
  (cd "$TOOLS/kwok" && go build -trimpath -ldflags "-s -w" -o "$BIN/kwok" sigs.k8s.io/kwok/cmd/kwok)

  # Prometheus for the operator's Prometheus load source: Kubernetes pod discovery only.
  PV="$(module_version prometheus github.com/prometheus/prometheus)"
  PV3="3.${PV#v0.3}" # module v0.316.0 is Prometheus 3.16.0
  step "prometheus $PV"
  (cd "$TOOLS/prometheus" && go build -trimpath -tags remove_all_sd,enable_kubernetes_sd \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PV3" \
    -o "$BIN/prometheus" github.com/prometheus/prometheus/cmd/prometheus)

  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    step "$cmd $KV"
    (cd "$TOOLS/k8s" && go build -trimpath -ldflags "$LDF" -o "$BIN/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  done
} 2>&1 | tee "$LOG" >&2

"$BIN/kube-apiserver" --version >&2
touch "$BIN/.complete"
link
