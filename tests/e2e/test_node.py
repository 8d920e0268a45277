"""The real node works: a local image runs as a pod on kubelet + containerd + runc, the
host reaches the pod's IP, another pod reaches it through a Service (kube-proxy) and by
its DNS name (CoreDNS), pods reach the API through the `kubernetes` Service, hostPorts
work (CNI portmap), `kubectl logs` / `kubectl exec` go through the kubelet's API, and
nothing a pod sends leaves the bridge, whatever the NetworkPolicy enforcer accepts."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from hack.localcluster.node import CLUSTER_DNS, GATEWAY, NodeCluster
from hack.waiting import wait_for

from .conftest import busybox_pod, pod_json, wait_ready

pytestmark = pytest.mark.e2e

WEB_PORT = 8080
HOST_PORT = 30480
# Debian's static busybox crashes on `wget -T`: bound it with `timeout` instead.
WGET = ("timeout", "5", "wget", "-qO-")
SERVE = (
    "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html"
    f" && echo serving on {WEB_PORT} && exec httpd -f -v -p {WEB_PORT} -h /www"
)


@pytest.fixture(scope="module")
def workload(node_cluster: NodeCluster, node_namespace: str) -> dict[str, Any]:
    """A web pod with a Service in front and a hostPort, and a client pod."""
    ns = node_namespace
    web = busybox_pod(
        "web",
        SERVE,
        container={
            "ports": [{"containerPort": WEB_PORT, "hostPort": HOST_PORT}],
            "readinessProbe": {
                "httpGet": {"path": "/index.html", "port": WEB_PORT},
                "periodSeconds": 1,
            },
        },
    )
    client = busybox_pod("client", "exec sleep 3600")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": WEB_PORT}]},
    }
    items = {"apiVersion": "v1", "kind": "List", "items": [web, client, service]}
    t0 = time.monotonic()
    node_cluster.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(items))
    wait_ready(node_cluster, ns, "web")
    web_ready = time.monotonic() - t0
    wait_ready(node_cluster, ns, "client")
    both_ready = time.monotonic() - t0
    print(f"\npods Ready after apply: web {web_ready:.1f}s, web+client {both_ready:.1f}s")
    svc = json.loads(node_cluster.kubectl("-n", ns, "get", "svc", "web", "-o", "json").stdout)
    return {
        "ns": ns,
        "web_ip": pod_json(node_cluster, ns, "web")["status"]["podIP"],
        "cluster_ip": svc["spec"]["clusterIP"],
        "web_ready_s": web_ready,
    }


def exec_in(cluster: NodeCluster, ns: str, pod: str, *cmd: str, check: bool = True) -> str:
    return cluster.kubectl("-n", ns, "exec", pod, "--", *cmd, check=check).stdout


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310
        return str(resp.read().decode())


def test_pod_runs_on_the_real_node(node_cluster: NodeCluster, workload: dict[str, Any]) -> None:
    pod = pod_json(node_cluster, workload["ns"], "web")
    assert pod["spec"]["nodeName"] == node_cluster.node.name
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] is True
    assert status["containerID"].startswith("containerd://")
    assert workload["web_ip"].startswith("10.244.0.")
    # The container really runs: its process is on this host, in the node's cgroups.
    tasks = node_cluster.node.ctr("tasks", "ls").stdout
    assert status["containerID"].removeprefix("containerd://") in tasks
    assert workload["web_ready_s"] < 60


def test_host_reaches_the_pod_ip(workload: dict[str, Any]) -> None:
    assert http_get(f"http://{workload['web_ip']}:{WEB_PORT}/") == "hello-from-web\n"


def test_host_port_through_cni_portmap(workload: dict[str, Any]) -> None:
    assert http_get(f"http://{GATEWAY}:{HOST_PORT}/") == "hello-from-web\n"


def test_service_cluster_ip_from_another_pod(
    node_cluster: NodeCluster, workload: dict[str, Any]
) -> None:
    url = f"http://{workload['cluster_ip']}/"
    out = wait_for(
        lambda: exec_in(node_cluster, workload["ns"], "client", *WGET, url, check=False),
        "the Service's ClusterIP to answer from the client pod",
        timeout=30,
    )
    assert out == "hello-from-web\n"


def test_service_dns_name_from_another_pod(
    node_cluster: NodeCluster, workload: dict[str, Any]
) -> None:
    ns = workload["ns"]
    resolv = exec_in(node_cluster, ns, "client", "cat", "/etc/resolv.conf")
    assert f"nameserver {CLUSTER_DNS}" in resolv
    name = f"web.{ns}.svc.cluster.local"
    lookup = wait_for(
        lambda: exec_in(node_cluster, ns, "client", "nslookup", name, check=False),
        "CoreDNS to answer for the Service",
        timeout=30,
    )
    assert workload["cluster_ip"] in lookup
    # by the short name too, through the search path kubelet wrote
    out = exec_in(node_cluster, ns, "client", *WGET, "http://web/")
    assert out == "hello-from-web\n"


def test_pods_reach_the_api_through_the_kubernetes_service(
    node_cluster: NodeCluster, workload: dict[str, Any]
) -> None:
    endpoints = json.loads(
        node_cluster.kubectl("get", "endpoints", "kubernetes", "-o", "json").stdout
    )
    assert endpoints["subsets"][0]["addresses"][0]["ip"] == GATEWAY
    # A real in-cluster client: the pinned kubectl (static) from a hostPath, with no
    # kubeconfig, so client-go's in-cluster config: KUBERNETES_SERVICE_HOST (10.96.0.1,
    # kube-proxy's DNAT to the apiserver on the gateway), the service-account token, and
    # the CA bundle it verifies the apiserver with.
    ns = workload["ns"]
    pod = busybox_pod(
        "whoami",
        "exec /kubectl auth whoami -o json",
        restartPolicy="Never",
        container={"volumeMounts": [{"name": "kubectl", "mountPath": "/kubectl"}]},
        volumes=[
            {
                "name": "kubectl",
                "hostPath": {"path": str(node_cluster.kubectl_path.resolve()), "type": "File"},
            }
        ],
    )
    node_cluster.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(pod))
    node_cluster.kubectl(
        "-n", ns, "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/whoami",
        "--timeout=60s",
    )  # fmt: skip
    review = json.loads(node_cluster.kubectl("-n", ns, "logs", "whoami").stdout)
    assert review["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:default"
    # CoreDNS, too, is Ready only once it has listed Services from the API.
    node_cluster.kubectl(
        "-n", "kube-system", "wait", "--for=condition=Available", "deployment/coredns",
        "--timeout=30s",
    )  # fmt: skip


def test_kubectl_logs_and_exec(node_cluster: NodeCluster, workload: dict[str, Any]) -> None:
    ns = workload["ns"]
    assert exec_in(node_cluster, ns, "web", "cat", "/www/index.html") == "hello-from-web\n"
    logs = node_cluster.kubectl("-n", ns, "logs", "web").stdout
    assert f"serving on {WEB_PORT}" in logs
    # stdin too (the exec stream is bidirectional)
    out = node_cluster.kubectl("-n", ns, "exec", "-i", "web", "--", "wc", "-c", input="12345")
    assert out.stdout.strip() == "5"


OUTSIDE = ("198.51.100.1", "198.51.100.2")  # the host's end, the outside host (TEST-NET-2)


@contextlib.contextmanager
def outside_host(port: int) -> Iterator[str]:
    """A host beyond the bridge: an HTTP server in a network namespace of its own
    (``unshare``, not ``ip netns add``, which would bind-mount /run/netns over the
    pods' namespaces), a veth pair to it routed from the host. Yields its address; the
    namespace and the veth pair go with the server's process."""
    host_end, far_end = OUTSIDE
    server = subprocess.Popen(
        ["unshare", "--net", sys.executable, "-m", "http.server", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    inside = ["nsenter", "-t", str(server.pid), "-n"]
    try:
        own = os.readlink("/proc/self/ns/net")
        wait_for(lambda: os.readlink(f"/proc/{server.pid}/ns/net") != own,
                 "the server's own network namespace", 10)  # fmt: skip
        for argv in (
            ["ip", "link", "add", "rstout0", "type", "veth", "peer", "name", "rstout1",
             "netns", str(server.pid)],
            ["ip", "addr", "add", f"{host_end}/24", "dev", "rstout0"],
            ["ip", "link", "set", "rstout0", "up"],
            [*inside, "ip", "addr", "add", f"{far_end}/24", "dev", "rstout1"],
            [*inside, "ip", "link", "set", "rstout1", "up"],
            [*inside, "ip", "route", "add", "default", "via", host_end],
        ):  # fmt: skip
            subprocess.run(argv, check=True)
        wait_for(lambda: _answers(f"http://{far_end}:{port}/"), "the outside host's server", 10)
        yield far_end
    finally:
        server.terminate()
        server.wait(10)
        subprocess.run(["ip", "link", "del", "rstout0"], capture_output=True, check=False)


def _answers(url: str) -> bool:
    try:
        http_get(url)
    except OSError:
        return False
    return True


def test_pods_reach_nothing_beyond_the_bridge(
    node_cluster: NodeCluster, workload: dict[str, Any]
) -> None:
    """The node's FORWARD guard holds although kube-router, first in filter's FORWARD,
    ACCEPTs every packet the (absent) policies allow: the guard runs in mangle, before."""
    ns, port = workload["ns"], 8099
    rules = subprocess.run(["iptables", "-S", "KUBE-ROUTER-FORWARD"], capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    assert "-j ACCEPT" in rules, "kube-router runs and accepts in filter"
    with outside_host(port) as address:
        assert _answers(f"http://{address}:{port}/")  # the host reaches it
        script = f"{' '.join(WGET)} http://{address}:{port}/; echo rc=$?"
        out = exec_in(node_cluster, ns, "client", "sh", "-c", script, check=False)
        assert "Directory listing" not in out and "rc=0" not in out, out
        # while the same client reaches a pod at once (the network is not simply down)
        assert exec_in(
            node_cluster, ns, "client", *WGET, f"http://{workload['web_ip']}:{WEB_PORT}/"
        )
