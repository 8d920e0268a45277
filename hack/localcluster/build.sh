#!/usr/bin/env bash
# Builds the local test cluster's binaries from the official Go modules, once, into
#   ${XDG_CACHE_HOME:-$HOME/.cache}/restream-operator/cluster-<versions>/bin
# and prints that directory. A warm cache returns at once; a cold build takes
# several minutes on two cores and says so while it works.
#
# RESTREAM_KUBERNETES chooses the Kubernetes version, and so the bin dir that everything
# in hack/localcluster (and the tests) runs:
#   pinned (the default)  KUBERNETES_VERSION, every binary (go/)
#   oldest                KUBERNETES_OLDEST_VERSION, the oldest minor the README claims:
#                         its control plane and kubectl (go-oldest/), in a cache entry
#                         of its own keyed by that version; etcd, kwok and the tools
#                         (helm, kstatus, ...) are linked from the pinned build, as they
#                         do not depend on the API server's version. No kubelet or
#                         kube-proxy: the real-node tier runs on the pinned version only.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/versions.env
source "$here/versions.env"

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/restream-operator"
flavour=${RESTREAM_KUBERNETES:-pinned}
case $flavour in
  pinned)
    version=$KUBERNETES_VERSION module="$here/go"
    key="k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_$(sha256sum "$module/go.sum" | cut -c1-12)"
    bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy kwok)
    ;;
  oldest)
    # The pinned build first (its own lock, taken and released there): what is linked
    # from it must exist.
    pinned_bin=$(RESTREAM_KUBERNETES=pinned bash "$here/build.sh")
    version=$KUBERNETES_OLDEST_VERSION module="$here/go-oldest"
    key="k8s-${KUBERNETES_OLDEST_VERSION}_$(sha256sum "$module/go.sum" | cut -c1-12)"
    bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
    ;;
  *)
    echo "build.sh: RESTREAM_KUBERNETES=$flavour is not a version choice: use pinned" \
      "(the default, Kubernetes $KUBERNETES_VERSION) or oldest ($KUBERNETES_OLDEST_VERSION)" >&2
    exit 2
    ;;
esac
dest="$cache_root/cluster-$key"

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

# The oldest version's bin dir: the pinned build's version-independent binaries, linked.
link_pinned() {
  local name
  for name in etcd kwok helm coredns kube-router kstatus argo-health; do
    ln -sfn "$(readlink -f "$pinned_bin/$name")" "$dest/bin/$name"
  done
}
finish() {
  if [[ $flavour == pinned ]]; then ensure_tools; else link_pinned; fi
  echo "$dest/bin"
}

if complete; then finish; exit 0; fi

command -v go >/dev/null || { echo "build.sh: go is not installed" >&2; exit 1; }
mkdir -p "$cache_root"
# One builder at a time: CI and a developer's shell may race for a cold cache.
exec 9>"$cache_root/.build.lock"
flock 9
if complete; then finish; exit 0; fi

tmp=$(mktemp -d "$cache_root/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"
log() { echo "[cluster build $(date +%H:%M:%S)] $*" >&2; }
if [[ $flavour == pinned ]]; then
  log "cold build of Kubernetes $version, etcd $ETCD_VERSION, kwok $KWOK_VERSION into $dest"
  log "this takes about 6 minutes on 2 cores; later runs reuse the cache"
else
  log "cold build of Kubernetes $version (control plane and kubectl) into $dest"
  log "this takes about 5 minutes on 2 cores; later runs reuse the cache"
fi

minor=${version#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

export CGO_ENABLED=0 GOFLAGS=-mod=mod
cd "$module"
for cmd in "${bins[@]}"; do
  [[ $cmd == etcd || $cmd == kwok ]] && continue
  log "go build $cmd"
  go build -trimpath -ldflags "$ldflags" -o "$tmp/bin/$cmd" "k8s.io/kubernetes/cmd/$cmd"
done
if [[ $flavour == pinned ]]; then
  log "go build etcd"
  go build -trimpath -ldflags "-s -w" -o "$tmp/bin/etcd" go.etcd.io/etcd/server/v3
  log "go install kwok"
  GOBIN="$tmp/bin" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
fi

rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
log "done: $(du -sh "$dest" | cut -f1)"
finish
