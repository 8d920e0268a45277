"""The product on the real node, as a user would run it: the project's images in the
node's containerd, the Helm chart installed with its pods placed on the node, nginx-rtmp
sink pods to restream to, and an ffmpeg encoder on the host.

Shared by the node tier's tests (tests/e2e/test_product.py) and `make demo`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from restream_operator.version import version

from .controlplane import SERVICE_CIDR, LocalCluster
from .node import (
    BUSYBOX_IMAGE,
    CACHE,
    CLUSTER_DNS,
    POD_CIDR,
    REAL_NODE_SELECTOR,
    REAL_NODE_TOLERATION,
    NodeCluster,
)
from .pki import KeyPair

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "restream-operator"
VERSION = version()
IMAGE_TARS = tuple(
    CACHE / "images" / f"restream-operator-{target}-{VERSION}.tar"
    for target in ("operator", "media")
)
MEDIA_IMAGE = f"docker.io/restream-operator/media:{VERSION}"
RELEASE = "restream-operator"
SYSTEM_NS = "restream-system"
SINK_APP = "app"  # the sinks' nginx-rtmp application: rtmp://<sink>:1935/app/<key>
SINK_SCRATCH = "tmp"  # the sinks' emptyDir, at /tmp: nginx's files and the recordings
ON_THE_NODE = {"nodeSelector": REAL_NODE_SELECTOR, "tolerations": [REAL_NODE_TOLERATION]}


def build_images() -> None:
    """`make images`: a no-op when the cached archives match the sources."""
    subprocess.run(["make", "-C", str(ROOT), "images"], check=True, timeout=3600,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def helm_binary() -> Path:
    out = subprocess.run(
        ["bash", str(ROOT / "hack/localcluster/build.sh")],
        capture_output=True, text=True, check=True, timeout=1800,
    )  # fmt: skip
    return Path(out.stdout.strip().splitlines()[-1]) / "helm"


def chart_values(agent_poll_seconds: int = 1, private_destinations: bool = True) -> dict[str, Any]:
    """The chart's values for the local node: images already in containerd, every pod
    on the real node, the cluster's own ranges for the NetworkPolicies, and by default
    destinations that are pods of this cluster (private addresses, which the SSRF guard
    and the relays' NetworkPolicy refuse unless allowed; nothing resolves public names
    here, so admission does not try)."""
    return {
        "image": {"pullPolicy": "Never"},
        "mediaImage": {"pullPolicy": "Never"},
        **ON_THE_NODE,
        "mediaPods": ON_THE_NODE,
        "operator": {
            "allowPrivateDestinations": private_destinations,
            "resolveDestinations": False,
            "agentPollSeconds": agent_poll_seconds,
            "networkPolicy": {"podCIDRs": [POD_CIDR], "serviceCIDRs": [SERVICE_CIDR]},
        },
    }


def wait_ingest_reachable(
    cluster: LocalCluster, ns: str, livestream: str, timeout: float = 30
) -> None:
    """Until the ingest Service accepts a TCP connection from the host. A Ready ingest
    pod is not enough: kube-proxy programs the Service's new endpoint a moment later,
    and until then a connect is refused (an encoder would retry; ffmpeg does not)."""
    wait_service_reachable(cluster, ns, f"{livestream}-ingest", 1935, timeout)


def wait_webhook_reachable(cluster: LocalCluster, timeout: float = 30) -> None:
    """Until the operator's webhook Service accepts a TCP connection from the host, as
    the apiserver (a host process) calls it: after the operator's pod was replaced, its
    new endpoint is programmed a moment after the pod is Ready, and until then every
    write the webhook validates is refused."""
    wait_service_reachable(cluster, SYSTEM_NS, f"{RELEASE}-webhook", 443, timeout)


def wait_service_reachable(
    cluster: LocalCluster, ns: str, service: str, port: int, timeout: float
) -> None:
    svc = json.loads(cluster.kubectl("-n", ns, "get", "svc", service, "-o", "json").stdout)
    host = svc["spec"]["clusterIP"]
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError as e:
            if time.monotonic() > deadline:
                where = f"the Service {ns}/{service} at {host}:{port}"
                raise AssertionError(f"{where} refuses: {e}") from e
            time.sleep(0.1)


class Helm:
    """The pinned helm, with its own cache and config under ``home``."""

    def __init__(self, cluster: LocalCluster, home: Path) -> None:
        self.binary = helm_binary()
        self.env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        self.home = home

    def install(self, values: dict[str, Any]) -> None:
        """Installs the release, or upgrades it to these values if it is there."""
        self.home.mkdir(parents=True, exist_ok=True)
        values_file = self.home / "values.json"
        values_file.write_text(json.dumps(values, indent=2))
        subprocess.run(
            [str(self.binary), "upgrade", "--install", RELEASE, str(CHART),
             "--namespace", SYSTEM_NS, "--create-namespace", "-f", str(values_file)],
            check=True, env=self.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def uninstall(self) -> None:
        subprocess.run([str(self.binary), "uninstall", RELEASE, "--namespace", SYSTEM_NS, "--wait"],
                       env=self.env, capture_output=True, timeout=120, check=False)  # fmt: skip


def kubectl_report(
    cluster: LocalCluster, commands: Iterable[tuple[str, ...]], files: Iterable[Path] = ()
) -> str:
    """What each kubectl command prints, and the tail of each file: a failing test's
    evidence."""
    parts = []
    for args in commands:
        with contextlib.suppress(Exception):
            p = cluster.kubectl(*args, check=False, timeout=20)
            parts.append(f"$ kubectl {' '.join(args)}\n{p.stdout}{p.stderr}")
    for path in files:
        with contextlib.suppress(OSError):
            parts.append(f"{path} (tail):\n{path.read_text(errors='replace')[-4000:]}")
    return "\n".join(parts)


@contextlib.contextmanager
def reported_on_failure(
    cluster: LocalCluster, commands: Iterable[tuple[str, ...]], files: Iterable[Path] = ()
) -> Iterator[None]:
    try:
        yield
    except BaseException:
        print(kubectl_report(cluster, commands, files))
        raise


def remove_product(cluster: LocalCluster, helm: Helm, ns: str) -> None:
    """The LiveStreams of ``ns`` (their pods go while the operator still runs), then the
    release; best effort, for a fixture's teardown."""
    with contextlib.suppress(Exception):
        cluster.kubectl("-n", ns, "delete", "livestreams", "--all", "--wait=true",
                        "--timeout=60s", timeout=70)  # fmt: skip
    with contextlib.suppress(Exception):
        helm.uninstall()


def wait_operator(cluster: LocalCluster, timeout: int = 120) -> None:
    cluster.kubectl(
        "-n", SYSTEM_NS, "rollout", "status", f"deployment/{RELEASE}", f"--timeout={timeout}s",
        timeout=timeout + 10,
    )  # fmt: skip


# -- sinks: nginx-rtmp pods that record what they receive --------------------------------


def sink_objects(name: str, address: str | None = None) -> list[dict[str, Any]]:
    """A ConfigMap, a Pod (the media image's nginx-rtmp, recording every stream it is
    sent to /tmp/rec, one file per session) and a Service named ``name``. With
    ``address``, the pod also answers on that address (added to its interface by an
    init container; ``RealNode.route_on_bridge`` routes it): a sink outside the
    cluster's ranges, or at a private address that is no pod's."""
    conf = f"""load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
worker_processes 1;
daemon off;
pid /tmp/nginx/nginx.pid;
error_log stderr info;
events {{ worker_connections 256; }}
rtmp {{
    server {{
        listen 1935;
        access_log off;
        application {SINK_APP} {{
            live on;
            record all;
            record_path /tmp/rec;
            record_unique on;
        }}
    }}
}}
"""
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name},
            "data": {"nginx.conf": conf},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                **ON_THE_NODE,
                "terminationGracePeriodSeconds": 1,
                "securityContext": {"runAsUser": 10001, "runAsGroup": 10001},
                "containers": [
                    {
                        "name": "nginx",
                        "image": MEDIA_IMAGE,
                        "imagePullPolicy": "Never",
                        "args": [
                            "sh",
                            "-c",
                            "mkdir -p /tmp/nginx /tmp/rec && exec nginx -c /etc/sink/nginx.conf"
                            " -e stderr -p /tmp/nginx/",
                        ],
                        "ports": [{"containerPort": 1935}],
                        "readinessProbe": {"tcpSocket": {"port": 1935}, "periodSeconds": 1},
                        "securityContext": {
                            "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False,
                        },
                        "volumeMounts": [
                            {"name": "conf", "mountPath": "/etc/sink"},
                            {"name": SINK_SCRATCH, "mountPath": "/tmp"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "conf", "configMap": {"name": name}},
                    {"name": SINK_SCRATCH, "emptyDir": {}},
                ],
                **({"initContainers": [_address_adder(address)]} if address else {}),
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 1935, "targetPort": 1935}]},
        },
    ]


def _address_adder(address: str) -> dict[str, Any]:
    return {
        "name": "address",
        "image": BUSYBOX_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["ip", "addr", "add", f"{address}/32", "dev", "eth0"],
        "securityContext": {"runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}},
    }


def sink_url(sink: str, ns: str) -> str:
    return f"rtmp://{sink}.{ns}.svc.cluster.local:1935/{SINK_APP}"


def sink_files(cluster: LocalCluster, ns: str, sink: str) -> dict[str, int]:
    """The sink's recordings: name -> size."""
    proc = cluster.kubectl(
        "-n", ns, "exec", sink, "--", "sh", "-c",
        "cd /tmp/rec && for f in *.flv; do [ -e \"$f\" ] && echo \"$f $(stat -c %s \"$f\")\"; done;"
        " true",
        check=False, timeout=20,
    )  # fmt: skip
    out: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        name, _, size = line.partition(" ")
        if size.isdigit():
            out[name] = int(size)
    return out


def sink_tracks(cluster: LocalCluster, ns: str, sink: str, recording: str) -> dict[str, Any]:
    """What a sink's recording holds, read by the ffprobe of the pod's own image: video
    frames, whether the first is a keyframe, audio packets and seconds."""
    proc = cluster.kubectl(
        "-n", ns, "exec", sink, "--", "ffprobe", "-v", "error", "-show_entries",
        "packet=codec_type,pts_time,flags", "-of", "json", f"/tmp/rec/{recording}",
        timeout=60,
    )  # fmt: skip
    every = json.loads(proc.stdout).get("packets", [])
    video = [p for p in every if p.get("codec_type") == "video"]
    audio = [float(p["pts_time"]) for p in every if p.get("codec_type") == "audio"]
    return {
        "video_frames": len(video),
        "first_keyframe": bool(video) and video[0].get("flags", "").startswith("K"),
        "audio_seconds": (max(audio) - min(audio)) if audio else 0.0,
    }


def sink_recordings(cluster: NodeCluster, ns: str, sink: str) -> Path:
    """The sink pod's recordings directory as the host sees it (the pod runs on the real
    node): a stat there costs nothing, where ``sink_files`` is an exec."""
    pod = json.loads(cluster.kubectl("-n", ns, "get", "pod", sink, "-o", "json").stdout)
    return cluster.node.empty_dir(pod["metadata"]["uid"], SINK_SCRATCH) / "rec"


# -- the encoder ---------------------------------------------------------------------------


def ingest_from_host(cluster: LocalCluster, ns: str, livestream: str) -> tuple[str, str]:
    """(RTMP URL, stream key) of a LiveStream's ingest as the host reaches it: the
    Service's ClusterIP (kube-proxy's rules on this host) instead of its DNS name."""
    svc = json.loads(cluster.kubectl("-n", ns, "get", "svc", f"{livestream}-ingest",
                                     "-o", "json").stdout)  # fmt: skip
    secret = json.loads(cluster.kubectl("-n", ns, "get", "secret", f"{livestream}-stream-key",
                                        "-o", "json").stdout)  # fmt: skip
    key = base64.b64decode(secret["data"]["streamKey"]).decode()
    return f"rtmp://{svc['spec']['clusterIP']}:1935/live", key


def with_cluster_dns(workdir: Path) -> list[str]:
    """argv prefix that runs a host process with the cluster's DNS as its resolver, in a
    mount namespace of its own (the host's /etc/resolv.conf is untouched): it reaches
    ``<service>.<namespace>.svc.cluster.local`` by name, as an encoder given the URL in
    status.ingest does, and a certificate is checked against that name."""
    resolv = workdir / "resolv.conf"
    resolv.write_text(f"nameserver {CLUSTER_DNS}\noptions timeout:2 attempts:3\n")
    script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
            str(resolv)]  # fmt: skip


def tls_secret(name: str, pair: KeyPair) -> dict[str, Any]:
    """A kubernetes.io/tls Secret holding ``pair``, as cert-manager's Certificate writes it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(pair.cert.read_bytes()).decode(),
            "tls.key": base64.b64encode(pair.key.read_bytes()).decode(),
        },
    }
