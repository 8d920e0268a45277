"""The operator's few API calls (kube.py) and its watches (watches.py), against the
real apiserver: for the watches, the listing, then every change in order, the API
server's label filter, a relist's DELETED for what went while nobody watched, and a
prompt stop."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from kubernetes import config

from hack.localcluster.controlplane import LocalCluster
from restream_operator import naming
from restream_operator.kube import FIELD_MANAGER, Kube, KubeError
from restream_operator.watches import Watch

pytestmark = pytest.mark.cluster


@pytest.fixture
def kube(cluster: LocalCluster) -> Kube:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    return Kube(api, timeout=10)


def config_map(namespace: str, name: str, value: str, **labels: str) -> dict[str, Any]:
    # No `labels: {}` when there are none, as the operator's children always have some:
    # up to 1.30 at least, the API server takes an empty map it then stores as absent for
    # a change, and a repeated apply a second later writes a new managedFields time.
    metadata = {"name": name, "namespace": namespace, **({"labels": labels} if labels else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"v": value}}


def test_apply_is_idempotent_and_owns_what_it_sets(kube: Kube, namespace: str) -> None:
    first = kube.apply(config_map(namespace, "c", "1"))
    again = kube.apply(config_map(namespace, "c", "1"))
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    managers = {m["manager"] for m in again["metadata"]["managedFields"]}
    assert managers == {FIELD_MANAGER}
    changed = kube.apply(config_map(namespace, "c", "2"))
    assert changed["data"] == {"v": "2"}
    assert changed["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]


def test_create_if_absent_never_overwrites(kube: Kube, namespace: str) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": namespace},
        "stringData": {"k": "first"},
    }
    assert kube.create_if_absent(secret) is True
    assert kube.create_if_absent({**secret, "stringData": {"k": "second"}}) is False
    stored = kube.get("Secret", namespace, "s")
    assert stored is not None and stored["data"] == {"k": "Zmlyc3Q="}  # "first"


def test_get_list_and_delete(kube: Kube, namespace: str) -> None:
    assert kube.get("ConfigMap", namespace, "absent") is None
    kube.apply(config_map(namespace, "mine", "1", **{naming.LABEL_LIVESTREAM: "launch"}))
    kube.apply(config_map(namespace, "other", "1", **{naming.LABEL_LIVESTREAM: "other"}))
    listed = kube.list("ConfigMap", namespace, {naming.LABEL_LIVESTREAM: "launch"})
    assert [o["metadata"]["name"] for o in listed] == ["mine"]
    assert kube.delete("ConfigMap", namespace, "mine") is True
    assert kube.delete("ConfigMap", namespace, "mine") is False
    assert kube.get("ConfigMap", namespace, "mine") is None


def test_patch_status_writes_the_status_subresource_only(
    cluster: LocalCluster, crds: None, kube: Kube, namespace: str
) -> None:
    doc = {
        "apiVersion": "restream.dev/v1alpha1",
        "kind": "LiveStream",
        "metadata": {"name": "launch", "namespace": namespace},
        "spec": {},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(doc))
    out = kube.patch_status(
        namespace, "launch", {"status": {"broadcasting": True}, "spec": {"suspend": True}}
    )
    assert out["status"]["broadcasting"] is True
    assert out["spec"].get("suspend") is not True  # the status subresource ignores spec


def test_refusals_carry_the_status_code_and_reason(kube: Kube, namespace: str) -> None:
    with pytest.raises(KubeError) as refused:
        kube.apply(config_map(namespace, "Not_A_Name", "1"))
    assert refused.value.status == 422
    assert refused.value.reason == "Invalid"
    with pytest.raises(KubeError) as missing:
        kube.patch_status(namespace, "absent", {"status": {}})
    assert missing.value.status == 404


# -- watches -----------------------------------------------------------------------------

Event = tuple[str, str, str]  # (type, name, data value)


async def until(what: str, done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def watching(
    kube: Kube,
    namespace: str,
    body: Callable[[Watch, list[Event]], Awaitable[None]],
    fields: dict[str, str] | None = None,
) -> list[Event]:
    """Runs ``body`` with a started Watch of the namespace's ConfigMaps labelled a=1
    (and with ``fields``), then stops it; the events it delivered, on the event loop,
    in order."""
    events: list[Event] = []

    def deliver(type_: str, obj: dict[str, Any]) -> None:
        assert obj["kind"] == "ConfigMap"
        events.append((type_, obj["metadata"]["name"], (obj.get("data") or {}).get("v", "")))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        watch = Watch(kube, "ConfigMap", namespace, {"a": "1"}, deliver, loop, fields)
        watch.start()
        try:
            await asyncio.wait_for(watch.synced.wait(), 10)
            await body(watch, events)
        finally:
            watch.stop()
            await asyncio.to_thread(watch.join, 2.0)
            assert not watch.running, "stop() must end an open watch at once"

    asyncio.run(main())
    return events


def test_a_watch_lists_then_delivers_each_change_in_order(kube: Kube, namespace: str) -> None:
    kube.apply(config_map(namespace, "before", "1", a="1"))
    kube.apply(config_map(namespace, "unlabelled", "1"))

    async def body(watch: Watch, events: list[Event]) -> None:
        assert events == [("ADDED", "before", "1")]  # listed before `synced`
        kube.apply(config_map(namespace, "after", "1", a="1"))
        kube.apply(config_map(namespace, "before", "2", a="1"))
        kube.apply(config_map(namespace, "unlabelled", "2"))  # filtered by the server
        kube.delete("ConfigMap", namespace, "after")
        await until("four events", lambda: len(events) >= 4)
        await asyncio.sleep(0.5)  # nothing else comes

    assert watching(kube, namespace, body) == [
        ("ADDED", "before", "1"),
        ("ADDED", "after", "1"),
        ("MODIFIED", "before", "2"),
        ("DELETED", "after", "1"),
    ]


def test_a_field_selector_is_the_api_servers_filter_of_listing_and_watch(
    kube: Kube, namespace: str
) -> None:
    """One object by name (the console's LiveStream page): the others never arrive."""
    kube.apply(config_map(namespace, "other", "1", a="1"))
    kube.apply(config_map(namespace, "one", "1", a="1"))

    async def body(watch: Watch, events: list[Event]) -> None:
        assert events == [("ADDED", "one", "1")]
        kube.apply(config_map(namespace, "other", "2", a="1"))
        kube.apply(config_map(namespace, "one", "2", a="1"))
        await until("the change", lambda: len(events) >= 2)
        await asyncio.sleep(0.5)

    events = watching(kube, namespace, body, {"metadata.name": "one"})
    assert events == [("ADDED", "one", "1"), ("MODIFIED", "one", "2")]


def test_a_relist_deletes_what_went_while_nobody_watched(kube: Kube, namespace: str) -> None:
    kube.apply(config_map(namespace, "stays", "1", a="1"))
    kube.apply(config_map(namespace, "goes", "1", a="1"))

    async def body(watch: Watch, events: list[Event]) -> None:
        watch.stop()
        await asyncio.to_thread(watch.join, 2.0)
        assert not watch.running
        kube.delete("ConfigMap", namespace, "goes")
        await asyncio.to_thread(watch._relist)  # what a 410 Gone or a failure leads to
        await until("the relist's events", lambda: len(events) >= 4)

    events = watching(kube, namespace, body)
    assert sorted(events[:2]) == [("ADDED", "goes", "1"), ("ADDED", "stays", "1")]
    assert events[2:] == [("ADDED", "stays", "1"), ("DELETED", "goes", "")]


def test_a_watch_stopped_while_it_opened_leaves_no_stream_in_the_pool(
    kube: Kube, namespace: str
) -> None:
    """The next request on that connection would wait behind the watch's stream, for
    minutes: the console's next page for the same viewer hung that way."""
    loop = asyncio.new_event_loop()
    try:
        watch = Watch(kube, "ConfigMap", namespace, {}, lambda *_: None, loop)
        version = watch._relist()
        watch._stopped.set()  # what stop() does, before the watch's response is known
        watch._watch(version)
        started = time.monotonic()
        Kube(kube.api, timeout=5).list_page("ConfigMap", namespace, {}, "", 1)
        assert time.monotonic() - started < 3
    finally:
        loop.close()
