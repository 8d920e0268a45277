#!/usr/bin/env bash
# `make images`: build both targets of the Dockerfile for real, check them, export them.
#
# No Docker daemon runs on the build machines and no registry is reachable, so this:
#   1. installs Debian's docker.io and debootstrap if they are missing;
#   2. makes (or reuses, by date) a `debootstrap --variant=minbase bookworm` tarball;
#   3. starts a private dockerd + containerd (hack/images/daemon.sh), stopped by PID on
#      exit, failure included;
#   4. imports the tarball as the Dockerfile's base (ARG BASE, debian:bookworm-slim);
#   5. builds `operator` and `media` with the classic builder and --network host (apt and
#      pip reach Debian and PyPI through the host), tagged restream-operator/<target>:<version>;
#   6. checks them (hack/images/check.sh);
#   7. saves them for the node tier (`ctr -n k8s.io images import FILE`), and imports
#      them so into the private containerd to prove it:
#        $CACHE/restream-operator-operator-<version>.tar
#        $CACHE/restream-operator-media-<version>.tar
#
# Warm path: when both tarballs exist for this version, are younger than
# BASE_MAX_AGE_DAYS, and the inputs (Dockerfile, .dockerignore, pyproject.toml, README.md,
# operator/, hack/images/) hash as they did when they were built and checked, nothing is
# rebuilt. FORCE=1 rebuilds anyway. VERBOSE=1 streams the build logs.
#
# CACHE is ${XDG_CACHE_HOME:-$HOME/.cache}/restream-operator/images (IMAGES_CACHE=...
# overrides it); the daemon's data root (images, build cache) is CACHE/docker-root, so a
# rebuild after a code change reuses the apt and dependency layers; its logs are in
# CACHE/logs. Remove CACHE to start over. Runs as root (debootstrap, dockerd).
# shellcheck source-path=SCRIPTDIR/../..
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here="$repo/hack/images"
cd "$repo"

cache=${IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/restream-operator/images}
max_age=${BASE_MAX_AGE_DAYS:-7}
export BASE_MAX_AGE_DAYS=$max_age
export DOCKER=${DOCKER:-/usr/bin/docker} # docker.io's CLI, the daemon's own version
mkdir -p "$cache"
# One run at a time per cache: two daemons must never share a data root.
exec 9>"$cache/.lock"
if ! flock -n 9; then
  echo "images: another make images holds $cache/.lock; waiting" >&2
  flock 9
fi

t0=$(date +%s)
step_t=$t0
step() {
  local now
  now=$(date +%s)
  printf '[images %4ss] %s\n' "$((now - t0))" "$*"
  step_t=$now
}
took() { printf '[images %4ss]   done in %ss\n' "$(($(date +%s) - t0))" "$(($(date +%s) - step_t))"; }

# --- version and inputs ----------------------------------------------------------------
# pyproject.toml is the version's one source (restream_operator/version.py reads it back
# from the installed package's metadata).
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)
[[ -n $version ]] || { echo "images: no version in pyproject.toml" >&2; exit 1; }
base=$(sed -n 's/^ARG BASE=\(.*\)$/\1/p' Dockerfile | head -n1)
[[ -n $base ]] || { echo "images: no 'ARG BASE=' in the Dockerfile" >&2; exit 1; }
op_image="restream-operator/operator:$version"
media_image="restream-operator/media:$version"
op_tar="$cache/restream-operator-operator-$version.tar"
media_tar="$cache/restream-operator-media-$version.tar"
stamp="$cache/restream-operator-$version.inputs"
summary="$cache/restream-operator-$version.summary"

inputs_hash() {
  {
    printf '%s\n' "$version" "$base"
    find Dockerfile .dockerignore pyproject.toml README.md operator hack/images -type f \
      -not -path '*/__pycache__/*' -not -name '*.pyc' -not -path '*.egg-info/*' \
      -not -name '*.crt' -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum | cut -d' ' -f1
}
hash=$(inputs_hash)

fresh() { [[ -n $(find "$1" -maxdepth 0 -mtime "-$max_age" 2>/dev/null) ]]; }
if [[ ${FORCE:-0} != 1 && -f $op_tar && -f $media_tar && -f $stamp ]] \
  && [[ $(cat "$stamp") == "$hash" ]] && fresh "$op_tar" && fresh "$media_tar"; then
  step "inputs unchanged (sha256 ${hash:0:12}): reusing the checked images"
  printf '  %s\n  %s\n' "$op_tar" "$media_tar"
  [[ -f $summary ]] && sed 's/^/  /' "$summary"
  step "make images: reused, ${SECONDS}s"
  exit 0
fi
[[ ${FORCE:-0} == 1 ]] && step "FORCE=1: rebuilding"

# --- tools -----------------------------------------------------------------------------
step "docker.io and debootstrap"
bash "$here/../packages.sh" images
took

# --- base root file system -------------------------------------------------------------
step "base: bookworm minbase root file system"
rootfs=$(bash "$here/rootfs.sh" "$cache")
took

# --- private daemon --------------------------------------------------------------------
# shellcheck source=hack/images/daemon.sh
source "$here/daemon.sh"
run_dir=$(mktemp -d /tmp/restream-images.XXXXXX)
logs="$cache/logs"
mkdir -p "$logs"
on_exit() {
  local rc=$?
  daemon_stop
  rm -f "$here"/build-ca/build-host-*.crt
  ((rc == 0)) || echo "images: FAILED (exit $rc); logs in $logs" >&2
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "starting a private dockerd (data root $cache/docker-root)"
if ! daemon_start "$run_dir" "$cache/docker-root"; then
  cp "$run_dir"/*.log "$logs/" 2>/dev/null || true
  exit 1
fi
took

# --- base image --------------------------------------------------------------------------
# Imported once per tarball: a new import would be a new image and void the build cache.
base_record="$cache/docker-root/base-image"
base_id=$("$DOCKER" image inspect -f '{{ .Id }}' "$base" 2>/dev/null || true)
if [[ -n $base_id && -f $base_record && $(cat "$base_record") == "$(basename "$rootfs") $base_id" ]]; then
  step "base: $base is $(basename "$rootfs") (already imported)"
else
  step "base: docker import $(basename "$rootfs") as $base"
  base_id=$("$DOCKER" import --change 'CMD ["bash"]' "$rootfs" "$base" | tail -n1)
  printf '%s %s\n' "$(basename "$rootfs")" "$base_id" >"$base_record"
  took
fi

# --- build -------------------------------------------------------------------------------
# pip in the build stage must trust what this machine trusts: the certificates of its CA
# bundle that Debian's ca-certificates does not ship (a TLS-inspecting proxy's root).
ca_dir="$here/build-ca"
rm -f "$ca_dir"/build-host-*.crt
python3 - "${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" "$ca_dir" <<'EOF'
import glob, re, sys
pem = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)
def body(cert): return "".join(cert.split())
known = set()
for path in glob.glob("/usr/share/ca-certificates/**/*.crt", recursive=True):
    known.update(body(c) for c in pem.findall(open(path).read()))
try:
    host = pem.findall(open(sys.argv[1]).read())
except OSError:
    host = []
extra = [c for c in host if body(c) not in known]
for i, cert in enumerate(extra, 1):  # one per file: update-ca-certificates links each
    with open(f"{sys.argv[2]}/build-host-{i}.crt", "w") as f:
        f.write(cert + "\n")
EOF
n_ca=$(find "$ca_dir" -name 'build-host-*.crt' | wc -l)
((n_ca == 0)) || step "build stage trusts $n_ca extra CA(s) of this machine (not in the images)"

rm -f "$logs"/build-*.log
build() {
  local target=$1 tag=$2 log="$logs/build-$1.log"
  step "docker build --target $target -t $tag (log: $log)"
  local args=(build --network host --pull=false --target "$target" -t "$tag"
    --build-arg "BASE=$base" --build-arg "VERSION=$version" -f Dockerfile .)
  if [[ ${VERBOSE:-0} == 1 ]]; then
    "$DOCKER" "${args[@]}" 2>&1 | tee "$log"
  elif ! "$DOCKER" "${args[@]}" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    return 1
  fi
  took
}
build operator "$op_image"
build media "$media_image"
# Tag the build stages too (all cache hits): the prune below would otherwise take their
# untagged layers, the next build's cache.
for stage in build build-agent; do
  "$DOCKER" build --network host --pull=false --target "$stage" -t "restream-operator/stage:$stage" \
    --build-arg "BASE=$base" --build-arg "VERSION=$version" -f Dockerfile . >>"$logs/build-stages.log" 2>&1
done

# --- check -------------------------------------------------------------------------------
step "checks"
bash "$here/check.sh" "$op_image" "$media_image" "$version"
took

# --- sizes, export -----------------------------------------------------------------------
size() { "$DOCKER" image inspect -f '{{ .Size }}' "$1" | awk '{ printf "%.0f MB", $1 / 1e6 }'; }
{
  printf '%s %s (%s)\n' "$op_image" "$(size "$op_image")" "$("$DOCKER" image inspect -f '{{ .Id }}' "$op_image" | cut -c1-19)"
  printf '%s %s (%s)\n' "$media_image" "$(size "$media_image")" "$("$DOCKER" image inspect -f '{{ .Id }}' "$media_image" | cut -c1-19)"
  printf 'base %s from %s\n' "$base" "$(basename "$rootfs")"
} >"$summary.partial"
sed 's/^/  /' "$summary.partial"

step "docker save (for: ctr -n k8s.io images import FILE)"
rm -f "$stamp"
"$DOCKER" save -o "$op_tar.partial" "$op_image"
"$DOCKER" save -o "$media_tar.partial" "$media_image"
mv "$op_tar.partial" "$op_tar"
mv "$media_tar.partial" "$media_tar"
mv "$summary.partial" "$summary"
# Other versions' exports are superseded.
find "$cache" -maxdepth 1 -name 'restream-operator-*' -not -name "restream-operator-$version.*" \
  -not -name "restream-operator-*-$version.tar" -delete
printf '  %s (%s MB)\n' "$op_tar" "$(du -m "$op_tar" | cut -f1)" "$media_tar" "$(du -m "$media_tar" | cut -f1)"
took

# What the node tier will do with them, into our own containerd (its root is temporary).
step "ctr -n k8s.io images import (as the node tier will), into the private containerd"
for tar in "$op_tar" "$media_tar"; do
  ctr --address "$DAEMON_RUN/containerd.sock" -n k8s.io images import "$tar" >/dev/null
done
ctr --address "$DAEMON_RUN/containerd.sock" -n k8s.io images ls -q | grep -E "restream-operator/(operator|media):$version\$" | sed 's/^/  /'
[[ $(ctr --address "$DAEMON_RUN/containerd.sock" -n k8s.io images ls -q | grep -cE "^docker.io/restream-operator/(operator|media):$version\$") == 2 ]]
took

# Untagged leftovers of earlier builds; the tagged images' layers stay as the build cache.
# (Nothing else runs on this daemon: its data root is ours.)
"$DOCKER" image prune -f >/dev/null
if [[ $(inputs_hash) == "$hash" ]]; then
  printf '%s\n' "$hash" >"$stamp"
else
  step "inputs changed during the build: not recorded, the next run rebuilds"
fi
step "make images: built and checked in ${SECONDS}s"
