#!/usr/bin/env bash
# `make test`'s first step: is everything its tiers run on this machine? Checked before
# anything is built, so that a machine without nginx learns it in a second, not after
# minutes of building and a run whose media tier could only fail (or, worse, skip).
#   bash hack/preflight.sh   exit 0: all there; exit 2: says what is missing and the one
#                            command that installs it
# Commands are looked up on PATH, as the tests look them up; files by their path. The
# groups are hack/packages.sh's, which installs them.
set -uo pipefail

missing=()  # "group: what"
groups=()

need() {
  local group=$1 thing
  shift
  for thing in "$@"; do
    if [[ $thing == /* ]]; then
      [[ -e $thing ]] && continue
    else
      command -v "$thing" >/dev/null 2>&1 && continue
    fi
    missing+=("$group: $thing")
    [[ " ${groups[*]} " == *" $group "* ]] || groups+=("$group")
  done
}

# The media tier runs these on the host (tests/conftest.py, hack/media/).
need media nginx ffmpeg ffprobe gst-launch-1.0 tcpdump \
  /usr/lib/nginx/modules/ngx_rtmp_module.so /usr/lib/nginx/modules/ngx_stream_module.so
need metrics prometheus
need browser chromium
need assets npm
need lint shellcheck
# `make images`, which the node tier runs: a private dockerd and a debootstrapped base.
need images dockerd debootstrap
# The real node (hack/localcluster/node.py, missing_requirements).
need node /usr/bin/containerd /usr/bin/ctr /usr/sbin/runc /usr/sbin/iptables \
  /usr/sbin/ip6tables /usr/sbin/ipset /usr/lib/cni/bridge /usr/lib/cni/host-local \
  /usr/lib/cni/loopback /usr/lib/cni/portmap /bin/busybox gcc

other=()
command -v go >/dev/null 2>&1 ||
  other+=("go: the local cluster's binaries are built from source; install Go 1.25 or later")
((EUID == 0)) ||
  other+=("root: the node tier runs a kubelet and containerd; run \`make test\` as root")

((${#missing[@]} + ${#other[@]})) || exit 0
{
  echo "make test: this machine lacks what the test tiers run; nothing was built or run:"
  printf '  %s\n' "${missing[@]}" "${other[@]}"
  if ((${#groups[@]})); then
    echo "Install it with:  sudo bash hack/packages.sh ${groups[*]}"
  fi
  echo "(\`make test-unit\` runs the unit tier, which needs none of it.)"
} >&2
exit 2
