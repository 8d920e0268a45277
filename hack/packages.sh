#!/usr/bin/env bash
# Installs the Debian packages a group of tasks needs, only those missing:
#   bash hack/packages.sh GROUP...
# Groups:
#   media   nginx-rtmp and ffmpeg (the media tier runs them on the host), tcpdump (what
#           an RTMP(S) publish shows on the wire), and GStreamer
#           with x264, AAC, FLV/RTMP and SRT elements (an encoder that is not ffmpeg)
#   lint    shellcheck
#   node    the real node: containerd, runc, CNI plugins, iptables, iproute2, ipset
#           (kube-router's NetworkPolicy enforcement), busybox
#           (a test image), gcc (the pause image), ffmpeg (an encoder on the host)
#   images  docker.io (a private dockerd) and debootstrap (the base root file system)
#   browser chromium (the console's browser tests drive it headless with Playwright)
#   assets  nodejs and npm (make console-assets: the console's HLS player, hls.js)
#   metrics prometheus (the media tier's real Prometheus scrapes the operator and agents)
# Not root and something missing: says what, exits 2, installs nothing.
set -euo pipefail

declare -A GROUPS_=(
  [media]="nginx libnginx-mod-rtmp libnginx-mod-stream ffmpeg tcpdump gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly"
  [lint]="shellcheck"
  [node]="containerd runc containernetworking-plugins busybox-static iptables iproute2 ipset gcc libc6-dev ffmpeg"
  [images]="docker.io debootstrap"
  [browser]="chromium"
  [assets]="nodejs npm"
  [metrics]="prometheus"
)

wanted=()
for group in "$@"; do
  [[ -n ${GROUPS_[$group]:-} ]] || { echo "packages.sh: unknown group '$group'" >&2; exit 1; }
  read -ra list <<<"${GROUPS_[$group]}"
  wanted+=("${list[@]}")
done

# What the installed packages provide: NodeSource's nodejs provides npm, and Debian's npm
# would conflict with it ("held broken packages").
provided=" $(dpkg-query -W -f='${Status}|${Provides}\n' 2>/dev/null |
  awk -F'|' '$1 == "install ok installed" && $2 != "" {
    gsub(/ \([^)]*\)/, "", $2); gsub(/, /, " ", $2); printf "%s ", $2 }') "

missing=()
for p in "${wanted[@]}"; do
  [[ " ${missing[*]} " == *" $p "* ]] && continue
  [[ $provided == *" $p "* ]] && continue
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
((${#missing[@]})) || exit 0
if ((EUID != 0)); then
  echo "packages.sh: missing ${missing[*]}; run as root or apt-get install them" >&2
  exit 2
fi
echo "apt-get install ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
