#!/usr/bin/env bash
# Build the real node's binaries: kubelet and kube-proxy at the Kubernetes version pinned in tools/k8s,
# CoreDNS (tools/coredns: only the plugins the cluster uses) and BuildKit (buildkitd, buildctl) at
# tools/buildkit/VERSION. Each binary is cached outside git, keyed by a hash of its own pins (go.mod, not
# go.sum: `go build -mod=mod` may add sums without changing what is built),
#   ${THRIFTY_CACHE:-$HOME/.cache/thrifty}/node-bin/<name>-<hash>
# and linked into .testbed/node-bin/. Idempotent; prints the bin folder on success.
set -euo pipefail

TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$TOOLS")"
CACHE="${THRIFTY_CACHE:-$HOME/.cache/thrifty}"
OUT="$CACHE/node-bin"
LINKS="$ROOT/.testbed/node-bin"
mkdir -p "$OUT" "$ROOT/.testbed"
# An older layout linked the whole folder.
[[ -L "$LINKS" ]] && rm "$LINKS"
mkdir -p "$LINKS"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
export GOMAXPROCS="${GOMAXPROCS:-2}"
step() { echo "==> $*" >&2; }
key() { cat "$@" | sha256sum | cut -c1-16; }

# have NAME HASH: link a cached binary; false when it still has to be built.
have() {
  [[ -x "$OUT/$1-$2" ]] || return 1
  ln -sfn "$OUT/$1-$2" "$LINKS/$1"
}

KV="$(sed -n 's#^replace k8s.io/kubernetes => k8s.io/kubernetes \(v[0-9.]*\)$#\1#p' "$TOOLS/k8s/go.mod")"
K8S_KEY="$(key "$TOOLS/k8s/go.mod")"
for cmd in kubelet kube-proxy; do
  have "$cmd" "$K8S_KEY" && continue
  command -v go >/dev/null || { echo "build-node.sh: Go is required (go1.25 or newer)" >&2; exit 1; }
  MAJ="${KV#v}"; MAJ="${MAJ%%.*}"; MIN="${KV#v*.}"; MIN="${MIN%%.*}"
  X() { printf -- "-X k8s.io/component-base/version.%s=%s -X k8s.io/client-go/pkg/version.%s=%s " "$1" "$2" "$1" "$2"; }
  LDF="-s -w $(X gitVersion "$KV")$(X gitMajor "$MAJ")$(X gitMinor "$MIN")$(X gitTreeState clean)$(X buildDate 1970-01-01T00:00:00Z)"
  step "$cmd $KV"
  (cd "$TOOLS/k8s" && go build -trimpath -ldflags "$LDF" -o "$OUT/$cmd-$K8S_KEY.partial" "k8s.io/kubernetes/cmd/$cmd")
  mv "$OUT/$cmd-$K8S_KEY.partial" "$OUT/$cmd-$K8S_KEY"
  have "$cmd" "$K8S_KEY"
done

DNS_KEY="$(key "$TOOLS/coredns/go.mod" "$TOOLS/coredns/main.go")"
if ! have coredns "$DNS_KEY"; then
  step "coredns $(cd "$TOOLS/coredns" && go list -m -f '{{.Version}}' github.com/coredns/coredns)"
  (cd "$TOOLS/coredns" && go build -trimpath -ldflags "-s -w" -o "$OUT/coredns-$DNS_KEY.partial" .)
  mv "$OUT/coredns-$DNS_KEY.partial" "$OUT/coredns-$DNS_KEY"
  have coredns "$DNS_KEY"
fi

BV="$(cat "$TOOLS/buildkit/VERSION")"
BK_KEY="$(key "$TOOLS/buildkit/VERSION")"
if ! have buildkitd "$BK_KEY" || ! have buildctl "$BK_KEY"; then
  # `go install` refuses BuildKit's module (its go.mod has exclude directives): build from its source.
  step "buildkit $BV"
  SRC="$(go mod download -json "github.com/moby/buildkit@$BV" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
  WORK="$(mktemp -d)"
  trap 'chmod -R u+w "$WORK"; rm -rf "$WORK"' EXIT
  cp -r "$SRC/." "$WORK"
  chmod -R u+w "$WORK"
  for cmd in buildkitd buildctl; do
    (cd "$WORK" && go build -trimpath -ldflags "-s -w -X github.com/moby/buildkit/version.Version=$BV" \
      -o "$OUT/$cmd-$BK_KEY.partial" "./cmd/$cmd")
    mv "$OUT/$cmd-$BK_KEY.partial" "$OUT/$cmd-$BK_KEY"
    have "$cmd" "$BK_KEY"
  done
fi
echo "$LINKS"
