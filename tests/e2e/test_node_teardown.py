"""The real node's teardown leaves nothing on the host: no process, mount, network
namespace, bridge, iptables chain, ipset, cgroup or changed sysctl, whether the node
stopped cleanly, crashed, or belonged to a run that was killed before it could clean up."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest

from hack.localcluster.__main__ import attach
from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.node import NodeCluster, NodeState, leftovers, running
from hack.waiting import wait_for

from .conftest import busybox_pod, run_module, start_node_cluster, wait_ready

pytestmark = pytest.mark.e2e


def run_workload(cluster: LocalCluster) -> None:
    """A pod with a hostPort, a Service and a NetworkPolicy: netns, veth, volumes, CNI
    and KUBE chains, kube-router's policy chains and ipsets."""
    pod = busybox_pod(
        "web",
        "exec httpd -f -p 8080 -h /",
        container={"ports": [{"containerPort": 8080, "hostPort": 30481}]},
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "web"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}],
        },
    }
    items = {"apiVersion": "v1", "kind": "List", "items": [pod, service, policy]}
    cluster.kubectl("-n", "default", "apply", "-f", "-", input=json.dumps(items))
    wait_ready(cluster, "default", "web")


def kinds(found: list[str]) -> set[str]:
    return {f.split()[0] for f in found}


def test_clean_stop_leaves_nothing() -> None:
    cluster = start_node_cluster()
    try:
        run_workload(cluster)

        def programmed() -> list[str]:  # kube-router syncs a moment after the apply
            found = leftovers(cluster.node.state)
            return found if "ipset" in kinds(found) else []

        running = wait_for(programmed, "kube-router to program the NetworkPolicy", timeout=30)
        # the check sees what a running node has (so that an empty list means something)
        assert {"process", "mount", "netns", "bridge", "chain", "ipset", "cgroup"} <= kinds(running)
        assert any("KUBE-SERVICES" in f for f in running)
        assert any("CNI-HOSTPORT-DNAT" in f for f in running)
        assert any("KUBE-ROUTER-FORWARD" in f for f in running)
        assert any("KUBE-NWPLCY-" in f for f in running)
        assert any(f.startswith("process") and "kube-router" in f for f in running)
    finally:
        cluster.stop()
    assert cluster.node.left == []


def test_stop_after_the_node_crashed_leaves_nothing() -> None:
    cluster = start_node_cluster()
    try:
        run_workload(cluster)
        for c in cluster.node.components:  # kubelet, containerd, kube-proxy die at once
            assert c.process is not None
            os.kill(c.process.pid, signal.SIGKILL)
            c.process.wait()
    finally:
        cluster.stop()
    assert cluster.node.left == []


def test_next_run_cleans_up_after_a_killed_run() -> None:
    first = start_node_cluster()
    second: NodeCluster | None = None
    try:
        run_workload(first)
        state = NodeState.load()
        assert state is not None and state.workdir == str(first.node.dir)
        # The test process "dies": every process it started is killed (PDEATHSIG), no
        # teardown runs, its lock is released, its files stay.
        for c in [*first.node.components, *first.components]:
            assert c.process is not None
            os.kill(c.process.pid, signal.SIGKILL)
            c.process.wait()
        first.node.components.clear()
        first.components.clear()
        assert first.node._lock is not None
        first.node._lock.close()
        first.node._lock = None
        assert leftovers(state)  # pods' shims, mounts, netns, chains... still there

        second = start_node_cluster()  # finds the state file, cleans up, starts
        # What was the first run's alone is gone already (the cgroup root, the bridge and
        # the chain names are shared with the second run: checked after it stops).
        assert not Path(state.workdir).exists()
        assert not first.workdir.exists()
        assert not any(state.workdir in line for line in leftovers(state))
    finally:
        if second is not None:
            second.stop()
        else:
            first.stop()
    assert second is not None
    assert second.node.left == []
    assert not any(state.workdir in line for line in leftovers(state))


def test_detached_node_outlives_up_is_left_alone_and_down_removes_it(tmp_path: Path) -> None:
    """`make demo`'s node: `up` exits and the node runs on; a test run that wants a node
    meanwhile is refused without touching it; `make cluster-down` removes everything."""
    demo_dir, other_dir = tmp_path / "demo", tmp_path / "other"
    state: NodeState | None = None
    try:
        up = run_module(demo_dir, "hack.localcluster", "up", "--node", "on")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "real node restream-node-0" in up.stdout
        state = NodeState.load()
        assert state is not None and state.detached and running(state)
        cluster, _ = attach(demo_dir)
        run_workload(cluster)
        pod_before = cluster.kubectl("-n", "default", "get", "pod", "web", "-o", "json").stdout
        uid = json.loads(pod_before)["metadata"]["uid"]

        refused = run_module(other_dir, "hack.localcluster", "up", "--node", "on")
        assert refused.returncode == 1
        assert "`make cluster-down` stops it" in refused.stderr, refused.stderr
        assert not other_dir.exists()
        # the detached node, its pod and the pod's network are untouched
        assert running(state)
        pod = json.loads(cluster.kubectl("-n", "default", "get", "pod", "web", "-o", "json").stdout)
        assert pod["metadata"]["uid"] == uid
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
        with socket.create_connection((pod["status"]["podIP"], 8080), timeout=5):
            pass  # the pod's network is intact: its server accepts
    finally:
        down = run_module(demo_dir, "hack.localcluster", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "real node torn down" in down.stdout
    assert not demo_dir.exists()
    assert state is not None
    assert leftovers(state) == []
    assert NodeState.load() is None
