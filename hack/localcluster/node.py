"""A real node for the local cluster: containerd, runc, CNI, kubelet, kube-proxy, CoreDNS.

``NodeCluster`` is a ``LocalCluster`` (kwok node included, for whatever does not ask for
the real node) plus one ``RealNode``:

* containerd (Debian's) with its own config, root, state and socket under the cluster's
  temp dir, the CRI plugin on runc (cgroupfs driver, cgroup v1 or v2), and CNI from
  Debian's ``containernetworking-plugins``: bridge ``rsnode0`` + host-local on
  ``10.244.0.0/24`` (+ loopback, + portmap for hostPorts);
* kubelet and kube-proxy (iptables mode) of the pinned Kubernetes release, with
  certificates from the cluster's CA (``system:node:<name>``; a serving certificate the
  apiserver verifies for logs and exec);
* the node registers with the label ``restream.dev/real-node=true`` and the taint
  ``restream.dev/real-node=true:NoSchedule``: only pods that ask for it land there
  (``REAL_NODE_SELECTOR`` and ``REAL_NODE_TOLERATION``);
* images are local: the pause image (``pause.c``, static), busybox (Debian's static
  binary) and CoreDNS (built by ``build.sh``) are packed here into scratch images, cached
  under ``${XDG_CACHE_HOME:-~/.cache}/restream-operator/node/`` and imported into
  containerd's ``k8s.io`` namespace; ``RealNode.import_image`` takes any docker-archive;
* cluster DNS: CoreDNS as a Deployment and the ``kube-dns`` Service on 10.96.0.10,
  serving ``cluster.local`` and the few ``TEST_HOSTS`` names (no upstream: nothing
  leaves the machine);
* a NetworkPolicy enforcer: kube-router's network-policy controller alone (built by
  ``build.sh``; no routing, no service proxy), a host process like kube-proxy, with its
  own client certificate and ClusterRole. It accepts whatever the node's own addresses
  send to its pods (the kubelet's probes, the host's encoders) before any policy.

Pods reach the API: the apiserver is also served on the bridge's gateway (see
``LocalCluster.api_host_ip``) and a firewall chain of ours admits that port, and the
kubelet's, only from loopback and the bridge; traffic from the bridge to anywhere but the
bridge is dropped, in the mangle table, before the filter table where kube-router
accepts what the policies allow. The host reaches pod IPs directly.

Teardown (``RealNode.stop``, also after a failed start, and for the leftovers of a run
that was killed outright, found through a state file at the next start) evicts the pods
with a NoExecute taint so that CNI DEL runs, stops kubelet, kube-proxy and containerd by
PID, kills whatever task or shim of this containerd is left, unmounts everything under
the node's directories, deletes the network namespaces the run created, the bridge, the
iptables chains the run created (KUBE-*, CNI-*, ours) and kube-router's ipsets, the
cgroups, the files the
components put outside their directories whatever they are told (shim sockets in
/run/containerd/s, libcni's cache, kubelet's device-plugin socket, and the host
directories that held them if this run created them), and restores the sysctls that
kubelet and the CNI plugins change. ``leftovers()`` lists whatever is still
there; the e2e tests assert it is empty. One real node per machine at a time (a lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .controlplane import (
    SERVICE_CIDR,
    ClusterError,
    Component,
    LocalCluster,
    _http_ok,
    _kubeconfig,
    alive,
    free_port,
    is_zombie,
    spawn,
    stop_pid,
    wait_until_ready,
)

HERE = Path(__file__).resolve().parent
ASSETS = HERE / "node"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "restream-operator"
IMAGE_CACHE = CACHE / "node"
LOCK = CACHE / "node.lock"
STATE = CACHE / "node-state.json"  # the running node's teardown state, removed after it

NODE_NAME = "restream-node-0"
BRIDGE = "rsnode0"
POD_CIDR = "10.244.0.0/24"
GATEWAY = "10.244.0.1"
CLUSTER_DNS = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
CGROUP_ROOT = "restream-node"
FIREWALL_CHAIN = "RESTREAM-NODE"
# Where the FORWARD guard lives: mangle's FORWARD runs before filter's, in which
# kube-router ACCEPTs the traffic its policies allow (and jumps first, at every sync).
FORWARD_GUARD_TABLE = "mangle"
NODE_LABEL = "restream.dev/real-node"
TEARDOWN_TAINT = "restream.dev/teardown"

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
BUSYBOX_IMAGE = "restream.local/busybox:1.35"
COREDNS_IMAGE_REPO = "restream.local/coredns"
# Names the node's CoreDNS answers from a hosts block: destinations outside the
# cluster's own names, at addresses tests give their sinks (``RealNode.route_on_bridge``).
# One is private (RFC 1918: a relay's NetworkPolicy denies it), one is not (TEST-NET-1,
# never routed on the internet: here it stands for a public host).
TEST_HOSTS = {
    "private.sink.example.com": "192.168.77.10",
    "public.sink.example.com": "192.0.2.10",
}

REAL_NODE_SELECTOR = {NODE_LABEL: "true"}
REAL_NODE_TOLERATION = {
    "key": NODE_LABEL,
    "operator": "Equal",
    "value": "true",
    "effect": "NoSchedule",
}

CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
RUNC = "/usr/sbin/runc"
CNI_BIN_DIR = Path("/usr/lib/cni")
POD_LOG_LINKS = Path("/var/log/containers")  # kubelet's symlinks; the path is fixed
NETNS_DIRS = (Path("/var/run/netns"), Path("/run/netns"))
CGROUP_MOUNT = Path("/sys/fs/cgroup")

# Host settings the run changes, restored by teardown: kubelet sets the first six
# (setupKernelTunables), the bridge plugin sets ip_forward.
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
)
# Host directories the components create whatever they are told (kubelet's device-plugin
# dir and log links, libcni's cache, containerd's netns and shim-socket dirs): removed by
# teardown when this run created them and they are empty again.
HOST_DIRS = (
    Path("/var/lib/kubelet/device-plugins"),
    Path("/var/lib/kubelet"),
    POD_LOG_LINKS,
    Path("/var/lib/cni/results"),
    Path("/var/lib/cni"),
    Path("/run/netns"),
    Path("/run/containerd/s"),
    Path("/run/containerd"),
)
CNI_CACHE = Path("/var/lib/cni/results")
DEVICE_PLUGIN_SOCKET = Path("/var/lib/kubelet/device-plugins/kubelet.sock")
CNI_NETWORK = "restream-node"
IPTABLES = ("iptables", "ip6tables")
TABLES = ("filter", "nat", "mangle", "raw")
CHAIN_PREFIXES = ("KUBE-", "CNI-", FIREWALL_CHAIN)
IPSET = "/usr/sbin/ipset"
# kube-router's ipsets (IPv6 ones carry "inet6:" in front): KUBE-SRC-*, KUBE-DST-*, and
# kube-router-local-pods with --netpol-default-deny
IPSET_PREFIXES = tuple(f"{f}{p}" for f in ("", "inet6:") for p in ("KUBE-", "kube-router-"))

DEBIAN_PACKAGES = (
    "containerd", "runc", "containernetworking-plugins", "iptables", "iproute2", "ipset",
)  # fmt: skip


def run(
    argv: list[str], *, check: bool = True, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, input=input
    )
    if check and proc.returncode != 0:
        raise ClusterError(
            f"{shlex.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    return proc


def missing_requirements() -> list[str]:
    """What this machine lacks for a real node (empty when it can run one)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    for path in (CONTAINERD, CTR, RUNC, "/usr/sbin/iptables", "/usr/sbin/ip6tables", "/sbin/ip",
                 IPSET):  # fmt: skip
        if not Path(path).exists() and not shutil.which(Path(path).name):
            missing.append(path)
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        if not (CNI_BIN_DIR / plugin).exists():
            missing.append(f"{CNI_BIN_DIR / plugin} (containernetworking-plugins)")
    if not shutil.which("gcc"):
        missing.append("gcc (to build the pause image)")
    if not Path("/bin/busybox").exists():
        missing.append("/bin/busybox (busybox-static)")
    return missing


# ---- images ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFile:
    """One entry of a scratch image's only layer."""

    path: str  # absolute, inside the image
    data: bytes | None = None  # a regular file's content
    mode: int = 0o755
    symlink: str | None = None  # or a symlink's target
    directory: bool = False


def _tar_info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _layer(files: Iterable[ImageFile]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        dirs: set[str] = set()

        def add_dirs(path: str) -> None:
            parts = path.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    tar.addfile(_tar_info(d, tarfile.DIRTYPE, 0o755))

        for f in sorted(files, key=lambda f: f.path):
            name = f.path.strip("/")
            add_dirs(f.path)
            if f.directory:
                if name not in dirs:
                    dirs.add(name)
                    tar.addfile(_tar_info(name, tarfile.DIRTYPE, f.mode))
            elif f.symlink is not None:
                info = _tar_info(name, tarfile.SYMTYPE, 0o777)
                info.linkname = f.symlink
                tar.addfile(info)
            else:
                data = f.data or b""
                info = _tar_info(name, tarfile.REGTYPE, f.mode)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_scratch_image(
    dest: Path,
    ref: str,
    files: Iterable[ImageFile],
    entrypoint: list[str],
    cmd: list[str] | None = None,
    env: list[str] | None = None,
) -> Path:
    """A one-layer image with no base, as a docker-archive tarball (what `docker save`
    writes and `ctr images import` reads): manifest.json, the config, the layer."""
    layer = _layer(files)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Entrypoint": entrypoint,
            "Cmd": cmd,
            "Env": env or ["PATH=/bin:/usr/bin"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "hack/localcluster/node.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id.removeprefix("sha256:") + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": [layer_name]}]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (
            (config_name, config_bytes),
            (layer_name, layer),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            parent = name.rsplit("/", 1)[0] if "/" in name else None
            if parent:
                tar.addfile(_tar_info(parent, tarfile.DIRTYPE, 0o755))
            info = _tar_info(name, tarfile.REGTYPE, 0o644)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.rename(dest)
    return dest


def _cached(stem: str, inputs: bytes, make: Callable[[Path], Path]) -> Path:
    """The tarball ``stem-<hash of inputs>.tar`` in the image cache, made if missing."""
    dest = IMAGE_CACHE / f"{stem}-{hashlib.sha256(inputs).hexdigest()[:12]}.tar"
    if not dest.exists():
        IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
        make(dest)
    return dest


def pause_image() -> Path:
    """registry.k8s.io/pause's job, built here: pause.c, static, in a scratch image."""
    source = (ASSETS / "pause.c").read_bytes()

    def make(dest: Path) -> Path:
        out = dest.with_suffix(".bin")
        run(["gcc", "-static", "-Os", "-s", "-o", str(out), str(ASSETS / "pause.c")])
        try:
            files = [ImageFile("/pause", out.read_bytes())]
        finally:
            out.unlink()
        return write_scratch_image(dest, PAUSE_IMAGE, files, ["/pause"])

    return _cached("pause", source + PAUSE_IMAGE.encode(), make)


def busybox_image() -> Path:
    """Debian's static busybox with a symlink per applet, and a minimal /etc."""
    binary = Path("/bin/busybox").read_bytes()

    def make(dest: Path) -> Path:
        applets = run(["/bin/busybox", "--list"]).stdout.split()
        files = [ImageFile("/bin/busybox", binary)]
        files += [ImageFile(f"/bin/{a}", symlink="busybox") for a in applets if a != "busybox"]
        files += [
            ImageFile(
                "/etc/passwd",
                b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
                0o644,
            ),
            ImageFile("/etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644),
            ImageFile("/tmp", mode=0o1777, directory=True),
            ImageFile("/root", mode=0o700, directory=True),
        ]
        return write_scratch_image(dest, BUSYBOX_IMAGE, files, [], cmd=["/bin/sh"])

    return _cached("busybox", binary + BUSYBOX_IMAGE.encode(), make)


def coredns_image(bin_dir: Path) -> tuple[str, Path]:
    binary_path = (bin_dir / "coredns").resolve()
    version = binary_path.parent.name.removeprefix("coredns-")
    ref = f"{COREDNS_IMAGE_REPO}:{version}"
    stat = binary_path.stat()

    def make(dest: Path) -> Path:
        files = [ImageFile("/coredns", binary_path.read_bytes())]
        return write_scratch_image(dest, ref, files, ["/coredns"])

    key = f"{binary_path}:{stat.st_size}:{stat.st_mtime_ns}:{ref}".encode()
    return ref, _cached("coredns", key, make)


# ---- host state: snapshot, teardown, leftovers -------------------------------------------


def _chains() -> dict[str, list[str]]:
    """`iptables:nat` -> the chains of that table (both families, the tables we touch)."""
    out: dict[str, list[str]] = {}
    for cmd in IPTABLES:
        for table in TABLES:
            proc = run([cmd, "-w", "5", "-t", table, "-S"], check=False, timeout=30)
            if proc.returncode != 0:
                continue
            out[f"{cmd}:{table}"] = [
                line.split()[1] for line in proc.stdout.splitlines() if line.startswith("-N ")
            ]
    return out


def _netns_names() -> list[str]:
    names: set[str] = set()
    for d in NETNS_DIRS:
        with contextlib.suppress(OSError):
            names.update(p.name for p in d.iterdir())
    return sorted(names)


def _ipsets() -> list[str]:
    proc = run([IPSET, "list", "-name"], check=False, timeout=30)
    return sorted(proc.stdout.split()) if proc.returncode == 0 else []


def _read_sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", name).read_text().strip()
    except OSError:
        return None


def _mounts() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        points.append(point)
    return points


def _cgroup_roots() -> list[Path]:
    """Every hierarchy's directory for our cgroup root (v1: one per controller)."""
    if (CGROUP_MOUNT / "cgroup.controllers").exists():  # cgroup v2 only
        return [CGROUP_MOUNT / CGROUP_ROOT]
    return [
        d / CGROUP_ROOT
        for d in sorted(CGROUP_MOUNT.iterdir())
        if d.is_dir() and not d.is_symlink() and os.path.ismount(d)
    ]


@dataclass
class NodeState:
    """What teardown needs, persisted so that a killed run is cleaned up by the next."""

    workdir: str
    cluster_workdir: str = ""  # removed too when a later run cleans up after a killed one
    containerd_address: str = ""
    chains_before: dict[str, list[str]] = field(default_factory=dict)
    netns_before: list[str] = field(default_factory=list)
    ipsets_before: list[str] = field(default_factory=list)
    sysctls_before: dict[str, str] = field(default_factory=dict)
    pids: list[tuple[int, str]] = field(default_factory=list)  # (pid, binary)
    # containerd 1.6 puts its shims' sockets in /run/containerd/s/ whatever its state dir
    # (named by a hash of our socket's path; a shim that is killed leaves its socket)
    shim_sockets: list[str] = field(default_factory=list)
    dirs_before: list[str] = field(default_factory=list)  # which of HOST_DIRS existed
    started_at: float = 0.0  # time.time() at the start: files newer than that are ours
    # `make cluster-up`/`make demo`: the node outlives the process that started it (and
    # its lock); `make cluster-down` stops it, and no other run may take it for a leftover
    detached: bool = False

    def save(self) -> None:
        STATE.write_text(json.dumps(self.__dict__, indent=2))

    @classmethod
    def load(cls) -> NodeState | None:
        try:
            data = json.loads(STATE.read_text())
        except (OSError, ValueError):
            return None
        data["pids"] = [tuple(p) for p in data.get("pids", [])]
        return cls(**data)


def running(state: NodeState) -> bool:
    """Whether a component the run started (containerd, kubelet, kube-proxy) still runs."""
    return any(alive(pid, binary) for pid, binary in state.pids)


_NODE_BINARIES = {
    b"containerd", b"containerd-shim-runc-v2", b"runc", b"kubelet", b"kube-proxy", b"kube-router",
}  # fmt: skip


def _our_pids(state: NodeState) -> list[int]:
    """Processes of this run: the node's binaries (containerd, its shims, runc, kubelet,
    kube-proxy, kube-router) whose command line names its directory or socket, and
    whatever runs in its cgroups (the pods)."""
    pids: set[int] = set()
    needles = [state.workdir.encode()]
    if state.containerd_address:
        needles.append(state.containerd_address.encode())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes()
            binary = cmdline.split(b"\0", 1)[0].rsplit(b"/", 1)[-1]
            if binary in _NODE_BINARIES and any(n in cmdline for n in needles):
                pids.add(int(proc.name))
    for root in _cgroup_roots():
        if root.exists():
            for procs in root.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in procs.read_text().split())
    return sorted(pids)


def _kill_pids(pids: list[int], timeout: float = 10) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    remaining = list(pids)
    while remaining and time.monotonic() < deadline:
        remaining = [p for p in remaining if Path(f"/proc/{p}").exists() and not is_zombie(p)]
        time.sleep(0.1)


def _new_netns(state: NodeState) -> list[str]:
    return [n for n in _netns_names() if n.startswith("cni-") and n not in state.netns_before]


def _our_mounts(state: NodeState) -> list[str]:
    netns = {str(d / n) for d in NETNS_DIRS for n in _new_netns(state)}
    prefix = state.workdir.rstrip("/") + "/"
    return [m for m in _mounts() if m.startswith(prefix) or m == state.workdir or m in netns]


def _new_chains(state: NodeState) -> dict[str, list[str]]:
    out = {}
    for key, chains in _chains().items():
        before = set(state.chains_before.get(key, []))
        new = [c for c in chains if c.startswith(CHAIN_PREFIXES) and c not in before]
        if new:
            out[key] = new
    return out


def _delete_chains(state: NodeState) -> None:
    for key, chains in _new_chains(state).items():
        cmd, table = key.split(":")
        doomed = set(chains)
        rules = run([cmd, "-w", "5", "-t", table, "-S"], check=False).stdout.splitlines()
        # First the jumps into them from chains that stay, then the chains themselves.
        for rule in rules:
            parts = shlex.split(rule)
            if len(parts) < 2 or parts[0] != "-A" or parts[1] in doomed:
                continue
            if any(
                parts[i] in ("-j", "-g") and parts[i + 1] in doomed for i in range(len(parts) - 1)
            ):
                run([cmd, "-w", "5", "-t", table, "-D", *parts[1:]], check=False)
        for chain in chains:
            run([cmd, "-w", "5", "-t", table, "-F", chain], check=False)
        for chain in chains:
            run([cmd, "-w", "5", "-t", table, "-X", chain], check=False)


def _new_ipsets(state: NodeState) -> list[str]:
    before = set(state.ipsets_before)
    return [n for n in _ipsets() if n.startswith(IPSET_PREFIXES) and n not in before]


def _destroy_ipsets(state: NodeState) -> None:
    """After the chains: a set an iptables rule still uses cannot be destroyed."""
    for name in _new_ipsets(state):
        run([IPSET, "destroy", name], check=False)


def _remove_cgroups() -> list[str]:
    errors = []
    for root in _cgroup_roots():
        if not root.exists():
            continue
        for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            try:
                d.rmdir()
            except OSError as e:
                errors.append(f"{d}: {e}")
        try:
            root.rmdir()
        except OSError as e:
            errors.append(f"{root}: {e}")
    return errors


def teardown(state: NodeState, *, stale: bool = False) -> None:  # noqa: PLR0912 - one step per kind of leftover
    """Removes everything the run described by ``state`` left on the host. Idempotent.
    ``stale``: the run was killed, its control plane's files are removed here too."""
    # 0. which shim sockets are ours (their addresses are in the tasks' bundles)
    tasks = Path(state.workdir, "containerd", "state", "io.containerd.runtime.v2.task")
    sockets = set(state.shim_sockets)
    for address in tasks.glob("*/*/address"):
        with contextlib.suppress(OSError):
            sockets.add(address.read_text().strip().removeprefix("unix://"))
    state.shim_sockets = sorted(sockets)
    # 1. the processes we started, then every other process of this run (shims, pods)
    for pid, binary in state.pids:
        stop_pid(pid, binary, timeout=10)
    _kill_pids(_our_pids(state))
    # 2. mounts (pods' volumes, overlay snapshots, shm, the kubelet's rshared root, netns)
    for _ in range(3):
        mounts = _our_mounts(state)
        if not mounts:
            break
        for m in sorted(mounts, key=lambda m: -len(m)):
            if run(["umount", m], check=False).returncode != 0:
                run(["umount", "-l", m], check=False)
    # 3. network namespaces CNI made (the veth pairs die with them), the bridge
    for name in _new_netns(state):
        for d in NETNS_DIRS:
            with contextlib.suppress(OSError):
                (d / name).unlink()
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        run(["ip", "link", "delete", BRIDGE], check=False)
    # 4. iptables chains this run created (kube-proxy's, kubelet's, CNI portmap's,
    # kube-router's, ours), then kube-router's ipsets
    _delete_chains(state)
    _destroy_ipsets(state)
    # 5. cgroups, shim sockets, libcni's cache, kubelet's log links, sysctls, files
    for sock in state.shim_sockets:
        Path(sock).unlink(missing_ok=True)
    for entry in _cni_cache_entries(state):
        entry.unlink(missing_ok=True)
    if _kubelet_socket_is_ours(state):
        DEVICE_PLUGIN_SOCKET.unlink(missing_ok=True)
    _remove_cgroups()
    with contextlib.suppress(OSError):
        for link in POD_LOG_LINKS.iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and os.readlink(link).startswith(state.workdir):
                    link.unlink()
    for name, value in state.sysctls_before.items():
        with contextlib.suppress(OSError):
            if _read_sysctl(name) != value:
                Path("/proc/sys", name).write_text(value)
    if not _our_mounts(state):
        shutil.rmtree(state.workdir, ignore_errors=True)
        if stale and state.cluster_workdir:
            shutil.rmtree(state.cluster_workdir, ignore_errors=True)
    for d in _new_host_dirs(state):
        with contextlib.suppress(OSError):
            d.rmdir()  # only if empty: a concurrent user of a shared dir keeps it


def _kubelet_socket_is_ours(state: NodeState) -> bool:
    """kubelet's device-plugin socket, whose path ignores --root-dir, if our kubelet
    made it (it is remade at every kubelet start)."""
    try:
        return DEVICE_PLUGIN_SOCKET.lstat().st_mtime >= state.started_at - 1
    except OSError:
        return False


def _new_host_dirs(state: NodeState) -> list[Path]:
    return [d for d in HOST_DIRS if str(d) not in state.dirs_before and d.is_dir()]


def _cni_cache_entries(state: NodeState) -> list[Path]:
    """libcni's cached results for our network (named after it) and our sandboxes'
    loopback; CNI DEL removes them, a killed run leaves them."""
    try:
        names = [p.name for p in CNI_CACHE.iterdir()]
    except OSError:
        return []
    ours = [n for n in names if n.startswith(f"{CNI_NETWORK}-")]
    ids = {n.removeprefix(f"{CNI_NETWORK}-").rsplit("-", 1)[0] for n in ours}
    tasks = Path(state.workdir, "containerd", "state", "io.containerd.runtime.v2.task")
    ids.update(p.name for p in tasks.glob("*/*"))
    ours += [n for n in names if n.startswith("cni-loopback-") and n[13:].rsplit("-", 1)[0] in ids]
    return [CNI_CACHE / n for n in ours]


def leftovers(state: NodeState) -> list[str]:
    """Whatever of the run described by ``state`` is still on the host (empty: nothing)."""
    found = [f"process {pid}: {_cmdline(pid)}" for pid in _our_pids(state)]
    found += [f"mount {m}" for m in _our_mounts(state)]
    found += [f"netns {n}" for n in _new_netns(state)]
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        found.append(f"bridge {BRIDGE}")
    found += [f"chain {k} {c}" for k, cs in _new_chains(state).items() for c in cs]
    found += [f"ipset {n}" for n in _new_ipsets(state)]
    found += [f"cgroup {r}" for r in _cgroup_roots() if r.exists()]
    found += [f"shim socket {s}" for s in state.shim_sockets if Path(s).exists()]
    found += [f"CNI cache {e}" for e in _cni_cache_entries(state)]
    if _kubelet_socket_is_ours(state):
        found.append(f"socket {DEVICE_PLUGIN_SOCKET}")
    found += [f"directory {d}" for d in _new_host_dirs(state) if not any(d.iterdir())]
    with contextlib.suppress(OSError):
        found += [
            f"log link {link}"
            for link in POD_LOG_LINKS.iterdir()
            if link.is_symlink() and os.readlink(link).startswith(state.workdir)
        ]
    for name, value in state.sysctls_before.items():
        now = _read_sysctl(name)
        if now != value:
            found.append(f"sysctl {name} is {now}, was {value}")
    if Path(state.workdir).exists():
        found.append(f"directory {state.workdir}")
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def ctr(
    address: str, *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """containerd's CLI on the node's containerd, in the namespace the CRI plugin uses."""
    return run([CTR, "--address", address, "--namespace", "k8s.io", *args],
               check=check, timeout=timeout)  # fmt: skip


def import_image(address: str, tarball: Path) -> None:
    """Makes a docker-archive (`docker save`, `make images`) available to pods."""
    ctr(address, "images", "import", str(tarball), timeout=300)


def tag_image(address: str, source: str, target: str) -> None:
    """Gives an image already in containerd another reference (both fully qualified,
    e.g. ``docker.io/restream-operator/media:1.0``): a new tag of the same content,
    which pods then see as a different image."""
    ctr(address, "images", "tag", "--force", source, target)


def evict_pods(cluster: LocalCluster, address: str, name: str, timeout: float = 30) -> None:
    """Lets the kubelet stop every pod (CNI DEL, volumes unmounted) while it still runs:
    a NoExecute taint evicts them and keeps their controllers' replacements away."""
    taint = cluster.kubectl(
        "taint", "node", name, f"{TEARDOWN_TAINT}=true:NoExecute", "--overwrite", check=False
    )
    if taint.returncode != 0:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = cluster.kubectl(
            "get", "pods", "-A", "--field-selector", f"spec.nodeName={name}",
            "-o", "name", check=False,
        )  # fmt: skip
        tasks = ctr(address, "tasks", "ls", "-q", check=False).stdout.split()
        if pods.returncode == 0 and not pods.stdout.strip() and not tasks:
            return
        time.sleep(0.5)


def stop_detached(cluster: LocalCluster) -> list[str]:
    """`make cluster-down`: stops the node a detached NodeCluster left running (its pods
    first, while the control plane still runs) and removes everything it put on the
    host. Returns what is left (empty: nothing)."""
    state = NodeState.load()
    if state is None:
        return []
    CACHE.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if any(alive(pid, b) for pid, b in state.pids if Path(b).name == "kubelet"):
            evict_pods(cluster, state.containerd_address, NODE_NAME)
        teardown(state)
        left = leftovers(state)
        if not left:
            STATE.unlink(missing_ok=True)
    return left


# ---- the node ----------------------------------------------------------------------------


@dataclass
class Timings:
    steps: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        yield
        self.steps[name] = round(time.monotonic() - t0, 2)


class RealNode:
    """One kubelet + containerd + kube-proxy node joined to ``cluster``."""

    lock_timeout: float = 300.0  # another run's node on this machine: wait this long

    def __init__(self, cluster: LocalCluster, name: str = NODE_NAME) -> None:
        self.cluster = cluster
        self.name = name
        self.dir = cluster.workdir / "node"
        self.log_dir = cluster.workdir / "logs"
        self.containerd_dir = self.dir / "containerd"
        self.containerd_sock = self.containerd_dir / "containerd.sock"
        self.kubelet_root = self.dir / "kubelet"
        self.kubelet_port = free_port()
        self.router_healthz = free_port()  # kube-router serves it on every address
        self.components: list[Component] = []
        self.timings = Timings()
        self.state = NodeState(
            workdir=str(self.dir),
            cluster_workdir=str(cluster.workdir),
            containerd_address=str(self.containerd_sock),
            detached=cluster.detached,
        )
        self._lock: IO[str] | None = None
        # False until prepare_host has checked the host is free: a start refused before
        # that (another node's bridge, a detached node running) must not tear down what
        # is not its own (the bridge, chain and cgroup names are shared by every run)
        self.owns_host = False
        self.coredns_ready = False
        self.left: list[str] = []  # what stop() found left on the host (empty: nothing)

    # ---- host preparation (before the control plane starts) -----------------------------

    def prepare_host(self) -> None:
        missing = missing_requirements()
        if missing:
            raise ClusterError("a real node needs: " + ", ".join(missing))
        CACHE.mkdir(parents=True, exist_ok=True)
        self._lock = LOCK.open("w")
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._lock.close()
                    self._lock = None
                    raise ClusterError(
                        f"another real node runs on this machine (lock {LOCK}) and did not "
                        f"stop within {self.lock_timeout:.0f}s"
                    ) from None
                time.sleep(1)
        stale = NodeState.load()
        if stale is not None and stale.detached and running(stale):
            raise ClusterError(
                "the real node that `make cluster-up` or `make demo` started still runs "
                f"(state {STATE}); `make cluster-down` stops it"
            )
        if stale is not None:  # a run that was killed before its teardown
            teardown(stale, stale=True)
            STATE.unlink(missing_ok=True)
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            raise ClusterError(f"interface {BRIDGE} exists already: not ours, not touching it")

        self.dir.mkdir(parents=True)
        self.owns_host = True  # from here on, stop() has this run's things to remove
        self.state.chains_before = _chains()
        self.state.netns_before = _netns_names()
        self.state.ipsets_before = _ipsets()
        self.state.dirs_before = [str(d) for d in HOST_DIRS if d.is_dir()]
        self.state.started_at = time.time()
        self.state.sysctls_before = {n: v for n in SYSCTLS if (v := _read_sysctl(n)) is not None}
        self.state.save()

        with self.timings.step("host network"):
            run(["ip", "link", "add", BRIDGE, "type", "bridge"])
            run(["ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE])
            run(["ip", "link", "set", BRIDGE, "up"])
            Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
            for fam in ("iptables", "ip6tables"):
                if _read_sysctl(f"net/bridge/bridge-nf-call-{fam}") is not None:
                    Path(f"/proc/sys/net/bridge/bridge-nf-call-{fam}").write_text("1")
            self._firewall()
            for root in _cgroup_roots():
                root.mkdir(exist_ok=True)
                if root.parent.name == "cpuset":  # a v1 cpuset child starts empty
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        (root / f).write_text((root.parent / f).read_text())

    def _firewall(self) -> None:
        """The API (bound on 0.0.0.0 for the pods), the kubelet and kube-router's health
        port answer loopback and the bridge only; pods reach nothing beyond the bridge and
        this host."""
        ports = f"{self.cluster.api_port},{self.kubelet_port},{self.router_healthz}"
        for cmd in IPTABLES:
            ipt = [cmd, "-w", "5"]
            run([*ipt, "-N", FIREWALL_CHAIN])
            run([*ipt, "-A", FIREWALL_CHAIN, "-i", "lo", "-j", "RETURN"])
            run([*ipt, "-A", FIREWALL_CHAIN, "-i", BRIDGE, "-j", "RETURN"])
            run([*ipt, "-A", FIREWALL_CHAIN, "-j", "DROP"])
            run([*ipt, "-I", "INPUT", "-p", "tcp", "-m", "multiport", "--dports", ports,
                 "-j", FIREWALL_CHAIN])  # fmt: skip
            fwd = [*ipt, "-t", FORWARD_GUARD_TABLE]
            run([*fwd, "-N", f"{FIREWALL_CHAIN}-FWD"])
            run([*fwd, "-A", f"{FIREWALL_CHAIN}-FWD", "-i", BRIDGE, "-o", BRIDGE, "-j", "RETURN"])
            run([*fwd, "-A", f"{FIREWALL_CHAIN}-FWD", "-i", BRIDGE, "-j", "DROP"])
            run([*fwd, "-I", "FORWARD", "-j", f"{FIREWALL_CHAIN}-FWD"])

    # ---- start (after the control plane) --------------------------------------------------

    def start(self, timeout: float = 180) -> None:
        ca = self.cluster.ca
        pki = self.dir / "pki"
        pki.mkdir()
        node_client = ca.issue(
            "kubelet-client", f"system:node:{self.name}", organization="system:nodes", client=True
        )
        serving = ca.issue(
            "kubelet-serving",
            self.name,
            dns_names=(self.name, "localhost"),
            ip_addresses=(GATEWAY, "127.0.0.1"),
            server=True,
        )
        proxy_client = ca.issue("kube-proxy", "system:kube-proxy", client=True)
        router_client = ca.issue("kube-router", "system:kube-router", client=True)
        kubelet_kc = self.dir / "kubelet.kubeconfig"
        kubelet_kc.write_text(
            _kubeconfig(self.cluster.server, ca.pair.cert, node_client, "kubelet")
        )
        proxy_kc = self.dir / "kube-proxy.kubeconfig"
        proxy_kc.write_text(
            _kubeconfig(self.cluster.server, ca.pair.cert, proxy_client, "kube-proxy")
        )
        router_kc = self.dir / "kube-router.kubeconfig"
        router_kc.write_text(
            _kubeconfig(self.cluster.server, ca.pair.cert, router_client, "kube-router")
        )

        with self.timings.step("images"):
            images = [pause_image(), busybox_image()]
            coredns_ref, coredns_tar = coredns_image(self.cluster.bin_dir)
            images.append(coredns_tar)
        self.coredns_ref = coredns_ref

        with self.timings.step("containerd"):
            self._start_containerd()
        with self.timings.step("image import"):
            for tar in images:
                self.import_image(tar)
        with self.timings.step("kubelet Ready"):
            self._start_kubelet(kubelet_kc, serving)
            self._wait(self._node_ready, f"node {self.name} Ready", timeout)
        with self.timings.step("kube-proxy"):
            self._start_kube_proxy(proxy_kc)
            self._wait(
                lambda: _http_ok(f"http://127.0.0.1:{self.proxy_healthz}/healthz"),
                "kube-proxy healthy",
                timeout,
            )
        with self.timings.step("kube-router synced"):
            self._start_kube_router(router_kc)
            self._wait(self._kube_router_synced, "kube-router's first policy sync", timeout)
        with self.timings.step("CoreDNS Ready"):
            self.deploy_coredns(timeout)

    def _spawn(self, name: str, argv: list[str]) -> Component:
        component = spawn(name, argv, self.log_dir, self.dir, self.cluster.detached)
        assert component.process is not None
        self.components.append(component)
        self.state.pids.append((component.process.pid, argv[0]))
        self.state.save()
        return component

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        wait_until_ready(self.components, self.cluster.logs, ready, what, timeout)

    def _start_containerd(self) -> None:
        d = self.containerd_dir
        cni_conf = self.dir / "cni" / "net.d"
        cni_conf.mkdir(parents=True)
        (cni_conf / "10-restream.conflist").write_text(json.dumps(self._cni_config(), indent=2))
        config = d / "config.toml"
        d.mkdir(exist_ok=True)
        config.write_text(
            (ASSETS / "containerd.toml")
            .read_text()
            .format(
                root=d / "root",
                state=d / "state",
                socket=self.containerd_sock,
                opt=d / "opt",
                pause=PAUSE_IMAGE,
                runc=RUNC,
                cni_bin=CNI_BIN_DIR,
                cni_conf=cni_conf,
            )
        )
        self._spawn("containerd", [CONTAINERD, "--config", str(config)])
        self._wait(lambda: self.ctr("version", check=False).returncode == 0, "containerd", 30)

    def _cni_config(self) -> dict[str, Any]:
        return {
            "cniVersion": "1.0.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.dir / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }

    def ctr(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return ctr(str(self.containerd_sock), *args, check=check, timeout=timeout)

    def import_image(self, tarball: Path) -> None:
        import_image(str(self.containerd_sock), tarball)

    def tag_image(self, source: str, target: str) -> None:
        tag_image(str(self.containerd_sock), source, target)

    def empty_dir(self, pod_uid: str, volume: str) -> Path:
        """Where the kubelet keeps a pod's emptyDir volume on this host: what the pod
        writes there can be watched from the host without an exec per look."""
        return self.kubelet_root / "pods" / pod_uid / "volumes" / "kubernetes.io~empty-dir" / volume

    def _start_kubelet(self, kubeconfig: Path, serving: Any) -> None:
        root = self.kubelet_root
        root.mkdir()
        self.kubelet_healthz = free_port()
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP_ROOT}",
            "cgroupsPerQOS": True,
            "enforceNodeAllocatable": ["pods"],
            "containerRuntimeEndpoint": f"unix://{self.containerd_sock}",
            "address": GATEWAY,
            "port": self.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.kubelet_healthz,
            "tlsCertFile": str(serving.cert),
            "tlsPrivateKeyFile": str(serving.key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.cluster.ca.pair.cert)},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDNS": [CLUSTER_DNS],
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": "",
            "failSwapOn": False,
            "podLogsDir": str(self.dir / "pod-logs"),
            "registerWithTaints": [{"key": NODE_LABEL, "value": "true", "effect": "NoSchedule"}],
            "serializeImagePulls": False,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "shutdownGracePeriod": "0s",
            "oomScoreAdj": 0,  # lowering it needs CAP_SYS_RESOURCE, which sandboxes may lack
            "protectKernelDefaults": False,  # it then sets six sysctls; teardown restores them
            "evictionHard": {
                "memory.available": "50Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "nodeStatusUpdateFrequency": "2s",
            "syncFrequency": "5s",
            "maxPods": 110,
        }
        config_file = self.dir / "kubelet-config.json"
        config_file.write_text(json.dumps(config, indent=2))
        self._spawn(
            "kubelet",
            [
                str(self.cluster.bin_dir / "kubelet"),
                f"--config={config_file}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={root}",
                f"--cert-dir={root / 'pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={GATEWAY}",
                f"--node-labels={NODE_LABEL}=true",
                "--v=1",
            ],
        )

    def _start_kube_proxy(self, kubeconfig: Path) -> None:
        self.proxy_healthz = free_port()
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "oomScoreAdj": 0,
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "hostnameOverride": self.name,
            "bindAddress": GATEWAY,
            "healthzBindAddress": f"127.0.0.1:{self.proxy_healthz}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            "clusterCIDR": POD_CIDR,
            "detectLocalMode": "ClusterCIDR",
            "nodePortAddresses": [f"{GATEWAY}/32"],
            # leave the host's conntrack settings alone
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"localhostNodePorts": False, "syncPeriod": "30s", "minSyncPeriod": "0s"},
        }
        config_file = self.dir / "kube-proxy-config.json"
        config_file.write_text(json.dumps(config, indent=2))
        self._spawn(
            "kube-proxy",
            [str(self.cluster.bin_dir / "kube-proxy"), f"--config={config_file}", "--v=1"],
        )

    def _start_kube_router(self, kubeconfig: Path) -> None:
        """The network-policy controller only: CNI, routes and Services stay with the
        bridge plugin and kube-proxy."""
        self.cluster.kubectl("apply", "-f", str(ASSETS / "kube-router.yaml"))
        self._spawn(
            "kube-router",
            [
                str(self.cluster.bin_dir / "kube-router"),
                "--run-firewall=true",
                "--run-router=false",
                "--run-service-proxy=false",
                "--run-loadbalancer=false",
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={self.name}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--enable-ipv4=true",
                "--enable-ipv6=false",  # the pods have no IPv6 address
                f"--health-port={self.router_healthz}",
                # Besides its event-driven syncs, a full one this often (the default is
                # 5 min): once in a CI run an operator pod that replaced a force-deleted
                # one was left out of the policies' source sets for over 2 minutes.
                "--iptables-sync-period=10s",
                "--metrics-port=0",
                "--v=1",
            ],
        )

    def _kube_router_synced(self) -> bool:
        """Healthy, and a first full sync has closed its FORWARD chain with the rule
        that ACCEPTs what the policies allowed."""
        if not _http_ok(f"http://127.0.0.1:{self.router_healthz}/healthz"):
            return False
        rules = run(["iptables", "-w", "5", "-S", "KUBE-ROUTER-FORWARD"], check=False).stdout
        return "0x20000/0x20000 -j ACCEPT" in rules

    def route_on_bridge(self, address: str) -> None:
        """Routes ``address`` (a /32) from the host onto the bridge, where a pod that
        added it to its interface answers for it: how a test gives a sink an address of
        its choice (``TEST_HOSTS``). The route goes with the bridge."""
        run(["ip", "route", "replace", f"{address}/32", "dev", BRIDGE])

    def _node_ready(self) -> bool:
        out = self.cluster.kubectl(
            "get",
            "node",
            self.name,
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            check=False,
        )
        return out.stdout.strip() == "True"

    def deploy_coredns(self, timeout: float) -> None:
        manifest = (ASSETS / "coredns.yaml").read_text()
        manifest = manifest.replace("@IMAGE@", self.coredns_ref)
        manifest = manifest.replace("@CLUSTER_DNS@", CLUSTER_DNS)
        manifest = manifest.replace("@NODE_LABEL@", NODE_LABEL)
        hosts = "\n".join(f"            {ip} {name}" for name, ip in sorted(TEST_HOSTS.items()))
        manifest = manifest.replace("@HOSTS@", hosts)
        self.cluster.kubectl("apply", "-f", "-", input=manifest)
        self.cluster.kubectl(
            "-n",
            "kube-system",
            "rollout",
            "status",
            "deployment/coredns",
            f"--timeout={int(timeout)}s",
            timeout=timeout + 10,
        )
        self.coredns_ready = True

    # ---- stop ------------------------------------------------------------------------------

    def stop(self) -> None:
        if not self.owns_host:
            if self._lock is not None:
                self._lock.close()
                self._lock = None
            return
        keep = os.environ.get("RESTREAM_NODE_KEEP_LOGS")  # a directory to copy the logs to
        if keep and self.log_dir.exists():
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(self.log_dir, keep)
        try:
            with self.timings.step("teardown"):
                self._evict_pods()
                for component in reversed(self.components):
                    if component.process is not None:
                        stop_pid(component.process.pid, component.argv[0], timeout=10)
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            component.process.wait(timeout=5)
                self.components.clear()
                teardown(self.state)
        finally:
            # Checked before the lock goes: the bridge, the chain names and the cgroup root
            # are the next run's too.
            self.left = leftovers(self.state)
            if not self.left:
                STATE.unlink(missing_ok=True)
            if self._lock is not None:
                self._lock.close()
                self._lock = None

    def _evict_pods(self) -> None:
        kubelet_up = any(
            c.name == "kubelet" and c.process is not None and c.process.poll() is None
            for c in self.components
        )
        if kubelet_up and self.cluster.components:
            evict_pods(self.cluster, str(self.containerd_sock), self.name)


class NodeCluster(LocalCluster):
    """A LocalCluster whose pods can also run for real, on ``self.node``."""

    def __post_init__(self) -> None:
        self.api_host_ip = GATEWAY
        super().__post_init__()
        self.node = RealNode(self)

    def _start(self, timeout: float) -> None:
        t0 = time.monotonic()
        self.node.prepare_host()
        super()._start(timeout)
        self.node.timings.steps["control plane"] = round(time.monotonic() - t0, 2)
        self.node.start(timeout)
        self.node.timings.steps["total"] = round(time.monotonic() - t0, 2)

    def stop(self) -> None:
        try:
            self.node.stop()
        finally:
            super().stop()
