#!/usr/bin/env bash
# Builds the local test cluster's binaries from the official Go modules, once, into
#   ${XDG_CACHE_HOME:-$HOME/.cache}/restream-operator/cluster-<versions>/bin
# and prints that directory. A warm cache returns at once; a cold build takes
# several minutes on two cores and says so while it works.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

key="k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_$(sha256sum "$here/go/go.sum" | cut -c1-12)"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/restream-operator"
dest="$cache_root/cluster-$key"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy kwok)

complete() { for b in "${bins[@]}"; do [[ -x "$dest/bin/$b" ]] || return 1; done; }

# helm, for the chart tests: its own cache entry, linked into the bin dir.
helm_dir="$cache_root/helm-$HELM_VERSION"
ensure_helm() {
  if [[ ! -x "$helm_dir/helm" ]]; then
    echo "[cluster build] go install helm $HELM_VERSION (about a minute)" >&2
    mkdir -p "$cache_root"
    local tmp_helm
    tmp_helm=$(mktemp -d "$cache_root/.helm-XXXXXX")
    CGO_ENABLED=0 GOBIN="$tmp_helm" go install -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    rm -rf "$helm_dir" && mv "$tmp_helm" "$helm_dir"
  fi
  ln -sfn "$helm_dir/helm" "$dest/bin/helm"
}

# CoreDNS, the node tier's cluster DNS (tests/cluster/node.py packs it into a scratch
# image): its own cache entry too, linked into the bin dir.
coredns_dir="$cache_root/coredns-$COREDNS_VERSION"
ensure_coredns() {
  if [[ ! -x "$coredns_dir/coredns" ]]; then
    echo "[cluster build] go install coredns $COREDNS_VERSION (about 3 minutes)" >&2
    mkdir -p "$cache_root"
    local tmp_coredns
    tmp_coredns=$(mktemp -d "$cache_root/.coredns-XXXXXX")
    CGO_ENABLED=0 GOFLAGS='' GOBIN="$tmp_coredns" go install -trimpath -ldflags "-s -w" \
      "github.com/coredns/coredns@$COREDNS_VERSION"
    rm -rf "$coredns_dir" && mv "$tmp_coredns" "$coredns_dir"
  fi
  ln -sfn "$coredns_dir/coredns" "$dest/bin/coredns"
}

if complete; then ensure_helm; ensure_coredns; echo "$dest/bin"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: go is not installed" >&2; exit 1; }
mkdir -p "$cache_root"
# One builder at a time: CI and a developer's shell may race for a cold cache.
exec 9>"$cache_root/.build.lock"
flock 9
if complete; then ensure_helm; ensure_coredns; echo "$dest/bin"; exit 0; fi

tmp=$(mktemp -d "$cache_root/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"
log() { echo "[cluster build $(date +%H:%M:%S)] $*" >&2; }
log "cold build of Kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION into $dest"
log "this takes about 6 minutes on 2 cores; later runs reuse the cache"

minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

export CGO_ENABLED=0 GOFLAGS=-mod=mod
cd "$here/go"
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
  log "go build $cmd"
  go build -trimpath -ldflags "$ldflags" -o "$tmp/bin/$cmd" "k8s.io/kubernetes/cmd/$cmd"
done
log "go build etcd"
go build -trimpath -ldflags "-s -w" -o "$tmp/bin/etcd" go.etcd.io/etcd/server/v3
log "go install kwok"
GOBIN="$tmp/bin" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"

rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
log "done: $(du -sh "$dest" | cut -f1)"
ensure_helm
ensure_coredns
echo "$dest/bin"
