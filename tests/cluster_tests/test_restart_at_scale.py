"""An operator restart with many LiveStreams defined and nothing changed writes nothing:
no child applied again, no status written, no Event (issue 15)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from hack.localcluster.census import api_writes, events_from, resource_versions
from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.livestreams import condition, many
from hack.localcluster.operator_process import OperatorProcess, wait_for_webhooks
from hack.waiting import wait_for
from restream_operator.kube import FIELD_MANAGER

pytestmark = pytest.mark.cluster

COUNT = 50


def ready_count(cluster: LocalCluster, namespace: str) -> int:
    out = cluster.kubectl("get", "livestreams", "-n", namespace, "-o", "json", timeout=60)
    return sum(
        condition(obj.get("status") or {}, "Ready") == "True"
        for obj in json.loads(out.stdout)["items"]
    )


def settled(cluster: LocalCluster, namespace: str) -> dict[str, str]:
    """The namespace's census once two in a row, 2 s apart, agree: the Deployment
    controller and kwok have made their last status writes."""
    last: dict[str, str] = {}

    def same() -> dict[str, str]:
        nonlocal last
        now = resource_versions(cluster, namespace)
        agreed, last = now == last, now
        return now if agreed else {}

    return wait_for(same, "the namespace to settle", timeout=60, every=2)


def test_a_restart_with_50_livestreams_and_nothing_changed_writes_nothing(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    docs = many(COUNT, 3, namespace, "show")
    cluster.kubectl("apply", "--server-side", "-f", "-", input=docs, timeout=120)
    wait_for(lambda: ready_count(cluster, namespace) == COUNT, f"{COUNT} Ready", timeout=180,
             every=1)  # fmt: skip
    # Earlier tests' namespaces still being deleted would count as writes.
    wait_for(lambda: "Terminating" not in cluster.kubectl("get", "namespaces").stdout,
             "no namespace terminating", timeout=120, every=1)  # fmt: skip
    before = settled(cluster, namespace)
    assert len(before) >= COUNT * 12, f"a census of {len(before)} objects is not all of them"
    objects_before = livestream_objects(cluster, namespace)

    operator.stop()
    writes_before = api_writes(cluster)
    events_before = events_from(cluster, namespace, FIELD_MANAGER)
    offset = len(operator.logs())
    operator.start()
    wait_for_webhooks(cluster)
    wait_for(lambda: resumed(operator, offset) >= COUNT, f"{COUNT} resumed", timeout=60)
    time.sleep(5)  # the status loop polls every second here: a few passes over each one

    assert all(" 0 applied, " in ln for ln in resumed_lines(operator, offset))
    writes = api_writes(cluster) - writes_before
    after = resource_versions(cluster, namespace)
    changed = sorted(k for k in after if after[k] != before.get(k))
    if changed and changed[0].startswith("LiveStream/"):  # say what was written
        name = changed[0].partition("/")[2]
        now = livestream_objects(cluster, namespace)[name]
        print("before:", json.dumps(objects_before[name], indent=1, sort_keys=True))
        print("after:", json.dumps(now, indent=1, sort_keys=True))
    assert after == before
    assert not writes, f"writes during the restart: {dict(writes)}"
    assert events_from(cluster, namespace, FIELD_MANAGER) == events_before


def livestream_objects(cluster: LocalCluster, namespace: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "livestreams", "-n", namespace, "-o", "json", timeout=60)
    return {o["metadata"]["name"]: o for o in json.loads(out.stdout)["items"]}


def resumed_lines(operator: OperatorProcess, offset: int) -> list[str]:
    return [ln for ln in operator.logs()[offset:].splitlines() if ": resume: reconciled" in ln]


def resumed(operator: OperatorProcess, offset: int) -> int:
    return len(resumed_lines(operator, offset))
