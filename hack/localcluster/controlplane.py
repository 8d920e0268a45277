"""A real, local Kubernetes control plane for tests and for people.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler, built from the pinned
official Go modules (``build.sh``), plus kwok, which plays the kubelet of simulated nodes
so that pods get scheduled and report Running/Ready. Everything listens on free
127.0.0.1 ports, talks TLS with certificates made for this run, and is stopped by PID.

Used by the pytest fixtures in ``tests/conftest.py`` and by ``python -m hack.localcluster``
(``make cluster-up`` / ``make cluster-down``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .pki import CertificateAuthority, KeyPair, service_account_keys

HERE = Path(__file__).resolve().parent
SERVICE_CIDR = "10.96.0.0/16"
# kwok hands out pod IPs from 127.N.0.0/16, N drawn per cluster (pod_cidr). Loopback
# addresses, so that anything that does try a simulated pod (the operator polling agents)
# stays on this machine and gets a prompt "connection refused", and tests can even serve
# a real agent on a pod's IP. (The EndpointSlice controller refuses loopback endpoints and
# says so in its log: harmless, nothing here routes through Service endpoints.) Drawn,
# because two clusters on one machine (tests run in parallel, a demo beside them) must
# not hand out the same pod IPs, or one's operator would poll the other's agents.
KWOK_POD_CIDRS = range(100, 251)
KWOK_NODE_IP = "127.99.0.1"
KWOK_NODE_NAME = "kwok-node-0"

_PR_SET_PDEATHSIG = 1
# The simulated cluster must never be what a test or benchmark waits for: client-go's
# default 20 QPS would make 1000 pods take minutes to become Ready.
_FAST_CLIENT = ("--kube-api-qps=1000", "--kube-api-burst=2000")


class ClusterError(RuntimeError):
    pass


def build_binaries() -> Path:
    """Builds (or finds in the cache) the pinned binaries and returns their directory."""
    out = subprocess.run(
        ["bash", str(HERE / "build.sh")], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    # If the test run is killed outright, its components get SIGTERM instead of living on.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Component:
    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


def alive(pid: int, binary: str) -> bool:
    """Whether ``pid`` runs and still is ``binary`` (not a reused PID, not a zombie)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    return Path(cmdline).name == Path(binary).name and not is_zombie(pid)


def stop_pid(pid: int, binary: str, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL, a process we started, checking it still is the one we started."""
    if not alive(pid, binary):
        return  # gone, or the PID was reused by something that is not ours
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or is_zombie(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def spawn(name: str, argv: list[str], log_dir: Path, cwd: Path, detached: bool) -> Component:
    """Starts one component, its output in log_dir/<name>.log. Unless detached, it gets
    SIGTERM when the test run dies."""
    log = log_dir / f"{name}.log"
    component = Component(name, argv, log)
    with log.open("wb") as out:
        component.process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=None if detached else _die_with_parent,  # noqa: PLW1509
        )
    return component


def wait_until_ready(
    components: list[Component],
    logs: Callable[[str], str],
    ready: Callable[[], bool],
    what: str,
    timeout: float,
) -> None:
    """Polls `ready`, failing at once (with its log) if a component exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in components:
            if c.process is not None and c.process.poll() is not None:
                raise ClusterError(
                    f"{c.name} exited with {c.process.returncode} while waiting for {what}:\n"
                    f"{logs(c.name)}"
                )
        if ready():
            return
        time.sleep(0.2)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")


def _kubeconfig(server: str, ca: Path, client: KeyPair, user: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "local", "cluster": {"server": server, "certificate-authority": str(ca)}}
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate": str(client.cert),
                        "client-key": str(client.key),
                    },
                }
            ],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
            "current-context": "local",
        },
        indent=2,
    )


@dataclass
class LocalCluster:
    """One control plane. ``start()`` returns once the API is ready and a kwok node is Ready."""

    bin_dir: Path
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="restream-k8s-")))
    detached: bool = False  # True for `make cluster-up`: components outlive this process
    components: list[Component] = field(default_factory=list)
    # The node tier (hack/localcluster/node.py) sets this to the pod bridge's gateway: the API is
    # then also served there (bound on 0.0.0.0, the node tier's firewall admits only loopback
    # and the bridge), advertised as the `kubernetes` Service's endpoint so that pods reach
    # it, and the apiserver gets a client certificate for the kubelet's API (logs, exec).
    # None (the default) keeps everything on 127.0.0.1.
    api_host_ip: str | None = None

    def __post_init__(self) -> None:
        self.pki_dir = self.workdir / "pki"
        self.log_dir = self.workdir / "logs"
        self.api_port = free_port()
        self.server = f"https://127.0.0.1:{self.api_port}"
        self.pod_cidr = f"127.{random.choice(KWOK_POD_CIDRS)}.0.0/16"  # noqa: S311 (no secret)
        self.kubeconfig = self.workdir / "admin.kubeconfig"

    @property
    def kubectl_path(self) -> Path:
        return self.bin_dir / "kubectl"

    # ---- lifecycle -------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        self.pki_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        ca = CertificateAuthority(self.pki_dir)
        serving = ca.issue(
            "apiserver",
            "kube-apiserver",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=(
                "127.0.0.1",
                "10.96.0.1",
                *([self.api_host_ip] if self.api_host_ip else []),
            ),
            server=True,
        )
        sa = service_account_keys(self.pki_dir)
        admin = ca.issue("admin", "restream-admin", organization="system:masters", client=True)
        self.admin = admin
        self.ca = ca
        kcm = ca.issue("kcm", "system:kube-controller-manager", client=True)
        sched = ca.issue("scheduler", "system:kube-scheduler", client=True)

        self.kubeconfig.write_text(_kubeconfig(self.server, ca.pair.cert, admin, "admin"))
        kcm_kc = self.workdir / "kcm.kubeconfig"
        kcm_kc.write_text(_kubeconfig(self.server, ca.pair.cert, kcm, "kcm"))
        sched_kc = self.workdir / "scheduler.kubeconfig"
        sched_kc.write_text(_kubeconfig(self.server, ca.pair.cert, sched, "scheduler"))

        etcd_port, etcd_peer = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                "--listen-metrics-urls=",
                # a test cluster's data is disposable: trade durability for speed
                "--unsafe-no-fsync",
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
        )
        self._wait(lambda: _http_ok(f"{etcd_url}/health"), "etcd", 30)

        if self.api_host_ip:
            kubelet_client = ca.issue(
                "apiserver-kubelet-client",
                "kube-apiserver-kubelet-client",
                organization="system:masters",
                client=True,
            )
            endpoint_args = [
                "--bind-address=0.0.0.0",
                f"--advertise-address={self.api_host_ip}",
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                f"--kubelet-certificate-authority={ca.pair.cert}",
                "--kubelet-preferred-address-types=InternalIP",
            ]
        else:
            endpoint_args = [
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # Endpoints for the `kubernetes` Service would be a loopback address,
                # which validation refuses; nothing in the tests needs them.
                "--endpoint-reconciler-type=none",
            ]
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                *endpoint_args,
                f"--secure-port={self.api_port}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.pair.cert}",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--api-audiences=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._wait(self._api_ready, "kube-apiserver", timeout)

        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kcm_kc}",
                f"--authentication-kubeconfig={kcm_kc}",
                f"--authorization-kubeconfig={kcm_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={ca.pair.cert}",
                f"--cluster-signing-cert-file={ca.pair.cert}",
                f"--cluster-signing-key-file={ca.pair.key}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--leader-elect=false",
                "--controllers=*",
                *_FAST_CLIENT,
                "--concurrent-deployment-syncs=20",
                "--concurrent-replicaset-syncs=20",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={sched_kc}",
                f"--authentication-kubeconfig={sched_kc}",
                f"--authorization-kubeconfig={sched_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
                *_FAST_CLIENT,
                "--v=1",
            ],
        )
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--config={HERE / 'kwok-stages.yaml'}",
                f"--cidr={self.pod_cidr}",
                f"--node-ip={KWOK_NODE_IP}",
                f"--server-address=127.0.0.1:{free_port()}",
                "--enable-crds=",
            ],
        )
        self.kubectl("apply", "-f", "-", input=json.dumps(_kwok_node(KWOK_NODE_NAME)))
        self._wait(self._node_ready, "kwok node Ready", timeout)
        self._wait(self._default_sa_ready, "default ServiceAccount", timeout)

    def stop(self) -> None:
        for component in reversed(self.components):
            if component.process is not None:
                stop_pid(component.process.pid, component.argv[0])
                with contextlib.suppress(subprocess.TimeoutExpired):
                    component.process.wait(timeout=5)
        self.components.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- helpers -----------------------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise ClusterError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc

    def wait_established(self, *crds: str, timeout: float = 30) -> None:
        """Waits until each CRD (by name, e.g. livestreams.restream.dev) is Established.
        Not `kubectl wait --for=condition=Established`: kubectl 1.30 (the oldest version
        the tests run) fails at once, instead of waiting, while a new CRD has no status
        conditions yet."""
        jsonpath = "jsonpath={.status.conditions[?(@.type=='Established')].status}"
        for name in crds:

            def established(name: str = name) -> bool:
                out = self.kubectl("get", "crd", name, "-o", jsonpath, check=False)
                return out.stdout.strip() == "True"

            wait_until_ready(self.components, self.logs, established, f"CRD {name}", timeout)

    def state(self) -> dict[str, object]:
        """What `python -m hack.localcluster down` needs to stop a detached cluster."""
        return {
            "bin_dir": str(self.bin_dir),
            "workdir": str(self.workdir),
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "components": [
                {"name": c.name, "pid": c.pid, "binary": c.argv[0]} for c in self.components
            ],
        }

    def logs(self, name: str, tail: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-tail:])

    def _spawn(self, name: str, args: list[str]) -> Component:
        argv = [str(self.bin_dir / name), *args]
        component = spawn(name, argv, self.log_dir, self.workdir, self.detached)
        self.components.append(component)
        return component

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        wait_until_ready(self.components, self.logs, ready, what, timeout)

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca.pair.cert))
        ctx.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        return ctx

    def _api_ready(self) -> bool:
        return _http_ok(f"{self.server}/readyz", self._ssl_context())

    def _node_ready(self) -> bool:
        out = self.kubectl(
            "get",
            "node",
            KWOK_NODE_NAME,
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            check=False,
        )
        return out.stdout.strip() == "True"

    def _default_sa_ready(self) -> bool:
        return self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# Pods one simulated node takes: bench.reconcile's 1000 LiveStreams x 3 destinations make
# 4000 pods (an ingest and a relay each) requesting 250 cores and 350 GiB: the scheduler
# must place every one of them.
KWOK_NODE_PODS = "10000"


def _kwok_node(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {
            "allocatable": {"cpu": "2000", "memory": "8Ti", "pods": KWOK_NODE_PODS},
            "capacity": {"cpu": "2000", "memory": "8Ti", "pods": KWOK_NODE_PODS},
        },
    }


@contextlib.contextmanager
def running_cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster(build_binaries())
    with cluster:
        yield cluster
