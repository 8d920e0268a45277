#!/usr/bin/env bash
# Builds the local test cluster's binaries from the official Go modules, once, into
#   ${XDG_CACHE_HOME:-$HOME/.cache}/restream-operator/cluster-<versions>/bin
# and prints that directory. A warm cache returns at once; a cold build takes
# several minutes on two cores and says so while it works.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/versions.env
source "$here/versions.env"

key="k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_$(sha256sum "$here/go/go.sum" | cut -c1-12)"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/restream-operator"
dest="$cache_root/cluster-$key"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy kwok)

complete() { for b in "${bins[@]}"; do [[ -x "$dest/bin/$b" ]] || return 1; done; }

# Tools with their own cache entry (a version bump rebuilds only them), linked into the
# bin dir: ensure_tool NAME VERSION PACKAGE@VERSION [LDFLAGS]
ensure_tool() {
  local name=$1 version=$2 pkg=$3 ldflags=${4:-}
  local dir="$cache_root/$name-$version"
  if [[ ! -x "$dir/$name" ]]; then
    echo "[cluster build] go install $name $version (a minute or three)" >&2
    mkdir -p "$cache_root"
    local tmp_dir
    tmp_dir=$(mktemp -d "$cache_root/.$name-XXXXXX")
    CGO_ENABLED=0 GOFLAGS='' GOBIN="$tmp_dir" go install -trimpath -ldflags "-s -w $ldflags" "$pkg"
    rm -rf "$dir" && mv "$tmp_dir" "$dir"
  fi
  ln -sfn "$dir/$name" "$dest/bin/$name"
}
# A Go program of this repository's (hack/NAME: main.go, go.mod, go.sum), cached by the
# hash of those files: ensure_local_tool NAME
ensure_local_tool() {
  local name=$1 src="$here/../$1"
  local key
  key=$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-12)
  local dir="$cache_root/$name-$key"
  if [[ ! -x "$dir/$name" ]]; then
    echo "[cluster build] go build hack/$name (half a minute)" >&2
    mkdir -p "$cache_root"
    local tmp_dir
    tmp_dir=$(mktemp -d "$cache_root/.$name-XXXXXX")
    (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" \
      -o "$tmp_dir/$name" .)
    rm -rf "$dir" && mv "$tmp_dir" "$dir"
  fi
  ln -sfn "$dir/$name" "$dest/bin/$name"
}
ensure_tools() {
  # helm, for the chart tests
  local kube="-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_KUBE_MINOR"
  kube+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_KUBE_MINOR"
  ensure_tool helm "${HELM_VERSION}-kube1.$HELM_KUBE_MINOR" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION $kube"
  # helm-docs, the chart's README from values.yaml (make lint checks it is current)
  ensure_tool helm-docs "$HELM_DOCS_VERSION" \
    "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
  # actionlint, the forge's workflows (make lint)
  ensure_tool actionlint "$ACTIONLINT_VERSION" \
    "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
  # CoreDNS, the node tier's cluster DNS (hack/localcluster/node.py packs it into an image)
  ensure_tool coredns "$COREDNS_VERSION" "github.com/coredns/coredns@$COREDNS_VERSION"
  # kube-router, only its network-policy controller: the node tier's NetworkPolicy enforcer
  ensure_tool kube-router "$KUBE_ROUTER_VERSION" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION" \
    "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"
  # kstatus, what Flux and kpt make of an object's status (the tests ask it)
  ensure_local_tool kstatus
  # argo-health, an Argo CD health check (Lua) run by Argo CD's own code (the tests ask
  # it); a cold build fetches Argo CD's module graph: minutes, once
  ensure_local_tool argo-health
}

if complete; then ensure_tools; echo "$dest/bin"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: go is not installed" >&2; exit 1; }
mkdir -p "$cache_root"
# One builder at a time: CI and a developer's shell may race for a cold cache.
exec 9>"$cache_root/.build.lock"
flock 9
if complete; then ensure_tools; echo "$dest/bin"; exit 0; fi

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
ensure_tools
echo "$dest/bin"
