#!/usr/bin/env bash
# Check the two images as the cluster will run them: no network, read-only root file
# system with a tmpfs on /tmp, no capabilities, no privilege escalation, the image's user.
#
#   DOCKER_HOST=unix://... hack/images/check.sh OPERATOR_IMAGE MEDIA_IMAGE VERSION
#
# build.sh runs it against its private daemon; by hand, point DOCKER_HOST at any daemon
# that has the images. Exits non-zero if any check fails (all are run and reported).
set -euo pipefail

op=${1:?usage: check.sh OPERATOR_IMAGE MEDIA_IMAGE VERSION}
media=${2:?usage: check.sh OPERATOR_IMAGE MEDIA_IMAGE VERSION}
version=${3:?usage: check.sh OPERATOR_IMAGE MEDIA_IMAGE VERSION}
docker=${DOCKER:-docker}
uid=10001 # render/common.py RUN_AS: the pods' runAsUser
fails=0

run() {
  "$docker" run --rm --network none --read-only --tmpfs /tmp:rw,mode=1777 \
    --cap-drop ALL --security-opt no-new-privileges "$@"
}

# check NAME COMMAND...: the command must succeed; its output is shown when it fails.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then
    printf '  ok    %s\n' "$name"
  else
    printf '  FAIL  %s\n' "$name"
    printf '%s\n' "$out" | tail -n 20 | sed 's/^/          /'
    fails=$((fails + 1))
  fi
}

# expect PATTERN COMMAND...: the command succeeds and its output matches PATTERN (ERE).
expect() {
  local pattern=$1 out
  shift
  out=$("$@" 2>&1) || { printf '%s\n' "$out"; return 1; }
  grep -Eq -- "$pattern" <<<"$out" || { printf 'no match for /%s/ in:\n%s\n' "$pattern" "$out"; return 1; }
}

label() { "$docker" image inspect -f "{{ index .Config.Labels \"org.opencontainers.image.$2\" }}" "$1"; }

labels() {
  local image=$1 key value
  for key in title description source licenses version; do
    value=$(label "$image" "$key")
    [[ -n $value && $value != "<no value>" ]] || { echo "label org.opencontainers.image.$key missing"; return 1; }
  done
  value=$(label "$image" version)
  [[ $value == "$version" ]] || { echo "version label $value, expected $version"; return 1; }
}

non_root() {
  local out
  out=$(run --entrypoint /usr/bin/id "$1" -u) || { echo "$out"; return 1; }
  [[ $out == "$uid" ]] || { echo "id -u is $out, expected $uid"; return 1; }
  out=$(run --entrypoint /usr/bin/id "$1" -g) || { echo "$out"; return 1; }
  [[ $out == "$uid" ]] || { echo "id -g is $out, expected $uid"; return 1; }
  [[ $("$docker" image inspect -f '{{ .Config.User }}' "$1") == "$uid:$uid" ]] || { echo "USER is not $uid:$uid"; return 1; }
}

# No pip, compiler or make in a final image (the venv is built in the `build` stage).
no_build_tools() {
  # shellcheck disable=SC2016 # expanded by the container's shell
  run --entrypoint /bin/sh "$1" -c '
    found=""
    for t in pip pip3 gcc cc c++ make; do command -v "$t" >/dev/null && found="$found $t"; done
    python3 -c "import pip" 2>/dev/null && found="$found python3-pip"
    /usr/bin/python3 -c "import pip" 2>/dev/null && found="$found system-pip"
    [ -z "$found" ] || { echo "build tools present:$found"; exit 1; }'
}

entrypoint() { [[ $("$docker" image inspect -f '{{ json .Config.Entrypoint }}' "$1") == "$2" ]]; }

# nginx loads Debian's dynamic rtmp module and accepts an rtmp {} block. (access_log off:
# nginx-rtmp's default access log is /var/log/nginx/access.log, which the image removes,
# as the operator's config does.)
nginx_rtmp_module() {
  run "$media" /bin/sh -ec '
    test -f /usr/lib/nginx/modules/ngx_rtmp_module.so
    mkdir -p /tmp/t
    cat > /tmp/t/nginx.conf <<EOF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
pid /tmp/t/nginx.pid;
error_log stderr;
events {}
rtmp { server { listen 127.0.0.1:1935; access_log off; application live { live on; } } }
EOF
    nginx -t -c /tmp/t/nginx.conf -e stderr -p /tmp/t/'
}

# The media pipeline inside the image, as uid 10001 on the read-only root: ffmpeg encodes
# a test stream (lavfi, libx264, aac); remuxes it as a relay does (concat script, -map 0
# -c copy, to flv and mpegts); nginx-rtmp takes it published and plays it back.
media_loop() {
  # shellcheck disable=SC2016 # expanded by the container's shell
  run "$media" /bin/sh -ec '
    cd /tmp
    ff="ffmpeg -hide_banner -nostdin -loglevel error -y"
    $ff -f lavfi -i testsrc=duration=3:size=320x240:rate=25 -f lavfi -i sine=duration=3 \
      -c:v libx264 -g 25 -c:a aac -shortest -f flv src.flv
    printf "ffconcat version 1.0\nfile /tmp/src.flv\n" > in.ffconcat
    $ff -protocol_whitelist file,rtmp,tcp -f concat -safe 0 -i in.ffconcat -map 0 -c copy \
      -flvflags no_duration_filesize -f flv relay.flv
    $ff -protocol_whitelist file,rtmp,tcp -f concat -safe 0 -i in.ffconcat -map 0 -c copy \
      -f mpegts relay.ts
    mkdir -p n
    cat > n/nginx.conf <<EOF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
pid /tmp/n/nginx.pid;
error_log stderr warn;
events {}
rtmp { server { listen 127.0.0.1:1935; access_log off; application live { live on; } } }
EOF
    nginx -c /tmp/n/nginx.conf -e stderr -p /tmp/n/ &
    nginx=$!
    sleep 0.5
    $ff -rw_timeout 10000000 -i rtmp://127.0.0.1:1935/live/test -t 1 -c copy -f flv played.flv &
    player=$!
    sleep 0.5
    $ff -re -i src.flv -c copy -f flv rtmp://127.0.0.1:1935/live/test
    wait "$player"
    kill -TERM "$nginx"
    wait "$nginx" || true
    for f in relay.flv relay.ts played.flv; do test -s "$f" || { echo "$f is empty"; exit 1; }; done
    echo "encoded, relayed (flv, mpegts), published and played back over rtmp"'
}

# Every shared library of ffmpeg, nginx and the rtmp module resolves.
shared_libraries() {
  # shellcheck disable=SC2016 # expanded by the container's shell
  run "$media" /bin/sh -c '
    out=$(ldd /usr/bin/ffmpeg /usr/sbin/nginx /usr/lib/nginx/modules/ngx_rtmp_module.so)
    echo "$out" | grep "not found" && exit 1
    echo "$out" | grep -c "=>"'
}

# Every module of a package imports in the image (python3 is the venv's).
imports() {
  run --entrypoint python3 "$1" -c "
import importlib, pkgutil, sys
pkg = importlib.import_module('$2')
names = ['$2'] + [m.name for m in pkgutil.walk_packages(pkg.__path__, '$2.')]
for name in names:
    importlib.import_module(name)
print(len(names), 'modules')"
}

# The operator's own ingest nginx.conf (HLS on), rendered by the operator image: nginx -t,
# then nginx really serves RTMP, as 10001 on the media image's read-only root.
nginx_operator_conf() {
  local conf port
  conf=$(run --entrypoint python3 "$op" -c "
from restream_operator.render.nginx import NginxParams, nginx_conf
print(nginx_conf(NginxParams(hls=True)))") || { echo "$conf"; return 1; }
  port=$(run --entrypoint python3 "$op" -c "
from restream_operator.agent import contract
print(contract.RTMP_PORT)") || { echo "$port"; return 1; }
  # shellcheck disable=SC2016 # expanded by the container's shell
  run -i -e "PORT=$port" "$media" /bin/sh -ec '
    cat > /tmp/nginx.conf
    mkdir -p /tmp/nginx/hls
    nginx -t -c /tmp/nginx.conf -e stderr -p /tmp/nginx/
    nginx -c /tmp/nginx.conf -e stderr -p /tmp/nginx/ &
    pid=$!
    python3 -c "
import os, socket, sys, time
port = int(os.environ[\"PORT\"])
for _ in range(100):
    try:
        socket.create_connection((\"127.0.0.1\", port), 1).close()
        print(\"nginx serves rtmp on port\", port, \"as uid\", os.getuid())
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(\"nginx did not listen on port %d\" % port)"
    kill -TERM "$pid"
    wait "$pid" || true' <<<"$conf"
}

echo "== $op"
check "restream-operator --help" expect 'usage: restream-operator' run "$op" --help
check "restream-operator crd" expect 'kind: CustomResourceDefinition' run "$op" crd
check "restream-agent --help" expect 'usage: restream-agent' run --entrypoint restream-agent "$op" --help
check "every module of restream_operator imports" expect '^[0-9]+ modules$' imports "$op" restream_operator
check "runs as $uid:$uid, not root" non_root "$op"
check "no pip, compiler or make" no_build_tools "$op"
check "entrypoint restream-operator" entrypoint "$op" '["restream-operator"]'
check "OCI labels (title, description, source, licenses, version=$version)" labels "$op"

echo "== $media"
check "tini is PID 1" expect '^tini$' run "$media" cat /proc/1/comm
check "entrypoint tini" entrypoint "$media" '["/usr/bin/tini","--"]'
check "restream-agent --help" expect 'usage: restream-agent' run "$media" restream-agent --help
check "restream-agent --help (default command)" expect 'usage: restream-agent' run "$media"
check "the agents import with the standard library, h11 and prometheus_client alone" expect '^[0-9]+ modules$' imports "$media" restream_operator.agent
check "no restream-operator command (the operator's dependencies are not here)" \
  run "$media" /bin/sh -c '! command -v restream-operator'
check "ffmpeg -version" expect '^ffmpeg version' run "$media" ffmpeg -hide_banner -version
check "the CA bundle rtmps:// relays verify against by default" \
  run "$media" test -s /etc/ssl/certs/ca-certificates.crt
check "nginx -V" expect '^nginx version: nginx/' run "$media" nginx -V
check "shared libraries of ffmpeg, nginx, ngx_rtmp_module all resolve" shared_libraries
check "nginx loads ngx_rtmp_module.so (nginx -t, rtmp {} block)" expect 'test is successful' nginx_rtmp_module
check "nginx runs the operator's ingest config (read-only root, uid $uid)" expect "nginx serves rtmp on port [0-9]+ as uid $uid" nginx_operator_conf
check "ffmpeg relays (concat, -c copy, flv and mpegts), nginx-rtmp publish and play" \
  expect '^encoded, relayed' media_loop
check "runs as $uid:$uid, not root" non_root "$media"
check "no pip, compiler or make" no_build_tools "$media"
check "OCI labels (title, description, source, licenses, version=$version)" labels "$media"

echo "== versions in the media image"
run "$media" /bin/sh -c 'nginx -v 2>&1; ffmpeg -hide_banner -version | head -n1; python3 --version; tini --version' | sed 's/^/  /'

if ((fails)); then
  echo "check.sh: $fails check(s) failed" >&2
  exit 1
fi
echo "check.sh: all checks passed"
