# shellcheck shell=bash
# A private Docker daemon for `make images`, sourced by build.sh (and usable by hand):
#
#   source hack/images/daemon.sh
#   trap daemon_stop EXIT
#   daemon_start RUN_DIR DATA_DIR   # then docker ... talks to it (DOCKER_HOST is exported)
#   daemon_stop                     # idempotent; stops what daemon_start started, by PID
#
# It is Debian's docker.io (dockerd 20.10) with its own containerd: every socket, pid file
# and state directory under RUN_DIR (keep it short: unix socket paths are limited to 108
# bytes), images and layers under DATA_DIR. No TCP listener, no iptables rules, no bridge,
# no IP forwarding or masquerading: containers get --network host (builds) or none
# (checks). A system dockerd or containerd, if any, is neither used nor touched.
# (containerd 1.6 puts its shims' sockets in /run/containerd/s/ whatever its state dir;
# they are named by a hash of our socket's path, and removed when the shims exit. runc's
# state is under dockerd's exec root. Nothing else is written outside the two roots.)

DOCKERD_PID=""
CONTAINERD_PID=""
DAEMON_RUN=""
DAEMON_DATA=""

_daemon_log() { printf 'daemon: %s\n' "$*" >&2; }

# Mount points under a directory, deepest first.
_daemon_mounts_under() {
  awk -v d="${1%/}/" 'index($5 "/", d) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

_daemon_unmount_under() {
  local m
  while read -r m; do
    [[ -n $m ]] || continue
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || _daemon_log "cannot unmount $m"
  done < <(_daemon_mounts_under "$1")
}

# Stop one process we started: TERM, up to $2 seconds, then KILL.
_daemon_kill() {
  local pid=$1 grace=$2 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    _daemon_log "pid $pid still running after ${grace}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

daemon_start() {
  DAEMON_RUN=${1:?daemon_start RUN_DIR DATA_DIR}
  DAEMON_DATA=${2:?daemon_start RUN_DIR DATA_DIR}
  local sock="$DAEMON_RUN/containerd.sock"
  if ((${#sock} > 100)); then
    _daemon_log "run dir too long for unix sockets: $DAEMON_RUN"
    return 1
  fi
  mkdir -p "$DAEMON_RUN" "$DAEMON_DATA"
  # A run killed with SIGKILL may have left mounts under the (persistent) data root.
  _daemon_unmount_under "$DAEMON_DATA"

  cat >"$DAEMON_RUN/containerd.toml" <<EOF
version = 2
root = "$DAEMON_RUN/containerd-root"
state = "$DAEMON_RUN/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$DAEMON_RUN/containerd-opt"
EOF
  containerd --config "$DAEMON_RUN/containerd.toml" >"$DAEMON_RUN/containerd.log" 2>&1 &
  CONTAINERD_PID=$!

  # deprecated-key-path: dockerd 20.10 would otherwise write /etc/docker/key.json.
  cat >"$DAEMON_RUN/daemon.json" <<EOF
{ "deprecated-key-path": "$DAEMON_DATA/key.json" }
EOF
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -S $sock ]] && break
    kill -0 "$CONTAINERD_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [[ ! -S $sock ]]; then
    _daemon_log "containerd did not start:"
    tail -n 20 "$DAEMON_RUN/containerd.log" >&2
    return 1
  fi

  dockerd \
    --config-file "$DAEMON_RUN/daemon.json" \
    --data-root "$DAEMON_DATA/docker" \
    --exec-root "$DAEMON_RUN/docker" \
    --pidfile "$DAEMON_RUN/dockerd.pid" \
    --host "unix://$DAEMON_RUN/docker.sock" \
    --containerd "$sock" \
    --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --bridge=none --userland-proxy=false \
    ${DOCKER_STORAGE_DRIVER:+--storage-driver "$DOCKER_STORAGE_DRIVER"} \
    >"$DAEMON_RUN/dockerd.log" 2>&1 &
  DOCKERD_PID=$!

  export DOCKER_HOST="unix://$DAEMON_RUN/docker.sock"
  export DOCKER_CONFIG="$DAEMON_RUN/cli" # the CLI writes nothing to ~/.docker
  export DOCKER_BUILDKIT=0               # classic builder: it never resolves FROM remotely
  mkdir -p "$DOCKER_CONFIG"
  for ((i = 0; i < 600; i++)); do
    "${DOCKER:-docker}" version >/dev/null 2>&1 && break
    if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
      _daemon_log "dockerd exited:"
      tail -n 30 "$DAEMON_RUN/dockerd.log" >&2
      return 1
    fi
    sleep 0.1
  done
  if ! "${DOCKER:-docker}" version >/dev/null 2>&1; then
    _daemon_log "dockerd did not answer in 60s:"
    tail -n 30 "$DAEMON_RUN/dockerd.log" >&2
    return 1
  fi
  _daemon_log "dockerd pid $DOCKERD_PID, containerd pid $CONTAINERD_PID, socket $DOCKER_HOST"
}

daemon_stop() {
  [[ -n $DAEMON_RUN ]] || return 0
  _daemon_kill "$DOCKERD_PID" 30
  DOCKERD_PID=""
  _daemon_kill "$CONTAINERD_PID" 15
  CONTAINERD_PID=""
  # Shims of our containerd outlive it only if a container still ran: they carry our
  # socket's address on their command line.
  local p
  for p in /proc/[0-9]*; do
    if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "-address $DAEMON_RUN/containerd.sock "; then
      _daemon_log "stopping leftover shim ${p#/proc/}"
      _daemon_kill "${p#/proc/}" 5
    fi
  done
  _daemon_unmount_under "$DAEMON_RUN"
  _daemon_unmount_under "$DAEMON_DATA"
  if [[ -n $(_daemon_mounts_under "$DAEMON_RUN") ]]; then
    _daemon_log "mounts remain under $DAEMON_RUN; leaving it"
  else
    rm -rf "$DAEMON_RUN"
  fi
  DAEMON_RUN=""
  _daemon_log "stopped"
}
