"""The one reconcile path and the status loop, driven directly against the real API.

The session's operator process may be reconciling the same objects meanwhile; these
tests assert only on what their own Runtime did.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from kubernetes import config

from hack.localcluster.controlplane import LocalCluster
from restream_operator import naming, reconcile, statusloop
from restream_operator.kube import Kube, Obj
from restream_operator.runtime import Runtime
from restream_operator.secretrefs import MissingSecret, SecretUse
from restream_operator.settings import Settings

pytestmark = pytest.mark.cluster


class CountingKube(Kube):
    """The real client, counting status writes."""

    status_writes = 0

    def patch_status(self, namespace: str, name: str, patch: Obj) -> Obj:
        self.status_writes += 1
        return super().patch_status(namespace, name, patch)


@pytest.fixture
def runtime(cluster: LocalCluster, crds: None) -> Runtime:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    return Runtime(settings=Settings(), kube=CountingKube(api))


def restream(name: str, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "serverUrl": "rtmp://a.example.com/app"}
    if secret:
        out["streamKeySecretRef"] = {"name": secret, "key": "key"}
    else:
        out["streamKey"] = "k-" + name
    return out


def create(cluster: LocalCluster, namespace: str, *restreams: dict[str, Any]) -> dict[str, Any]:
    doc = {
        "apiVersion": "restream.dev/v1alpha1",
        "kind": "LiveStream",
        "metadata": {"name": "launch", "namespace": namespace},
        "spec": {"restreams": list(restreams)},
    }
    out = cluster.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(doc))
    return dict(json.loads(out.stdout))


def test_a_reconcile_waits_for_the_one_already_running_on_the_same_livestream(
    cluster: LocalCluster, namespace: str, runtime: Runtime
) -> None:
    obj = create(cluster, namespace, restream("Youtube"))
    outcomes: list[reconcile.Outcome | None] = []
    worker = threading.Thread(
        target=lambda: outcomes.append(reconcile.reconcile(runtime, obj, "repair"))
    )
    with runtime.lock(obj["metadata"]["uid"]):  # as a reconcile in another thread would
        worker.start()
        worker.join(1.5)
        assert worker.is_alive(), "a second reconcile ran while the first held the lock"
        assert outcomes == []
    worker.join(30)
    assert outcomes and outcomes[0] is not None
    assert f"Deployment/{naming.relay_name('launch', 'Youtube')}" in outcomes[0].applied


def test_a_reconcile_works_from_the_newest_spec_seen_and_records_it(
    cluster: LocalCluster, namespace: str, runtime: Runtime
) -> None:
    stale = create(cluster, namespace, restream("Youtube"))
    patch = {"spec": {"restreams": [restream("Youtube"), restream("Twitch", secret="tw")]}}
    out = cluster.kubectl(
        "patch",
        "livestream",
        "launch",
        "-n",
        namespace,
        "--type=merge",
        "-o",
        "json",
        "-p",
        json.dumps(patch),
    )
    newest = dict(json.loads(out.stdout))
    runtime.remember(newest)  # what the watch delivered meanwhile

    outcome = reconcile.reconcile(runtime, stale, "update")  # a handler on the older event

    assert outcome is not None
    assert f"Deployment/{naming.relay_name('launch', 'Twitch')}" in outcome.applied
    state = runtime.stream(stale["metadata"]["uid"])
    assert state.reconciled_generation == newest["metadata"]["generation"] == 2
    assert state.reconcile_failure is None
    assert state.missing_secrets == (MissingSecret(SecretUse("tw", "key", "Twitch")),)


def test_a_livestream_being_deleted_is_not_reconciled(
    cluster: LocalCluster, namespace: str, runtime: Runtime
) -> None:
    obj = create(cluster, namespace, restream("Youtube"))
    obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert reconcile.reconcile(runtime, obj, "update") is None
    assert runtime.stream(obj["metadata"]["uid"]).reconciled_generation is None


def test_the_status_loop_writes_a_status_once_and_then_only_on_change(
    cluster: LocalCluster, namespace: str, runtime: Runtime
) -> None:
    obj = create(cluster, namespace, restream("Youtube"))
    uid = obj["metadata"]["uid"]
    runtime.remember(obj)
    reconcile.reconcile(runtime, obj, "create")
    kube = runtime.kube
    assert isinstance(kube, CountingKube)

    async def refresh() -> None:
        await statusloop.refresh(runtime, uid, asyncio.Semaphore(1))

    asyncio.run(refresh())
    assert kube.status_writes == 1
    written = runtime.stream(uid).written
    assert written is not None
    assert written["observedGeneration"] == 1
    assert {c["type"] for c in written["conditions"]} >= {"Ready", "IngestReady"}
    # Nothing observed changed: nothing is written (the loop runs every second).
    for _ in range(3):
        asyncio.run(refresh())
    assert kube.status_writes == 1
