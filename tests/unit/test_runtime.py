"""The operator's memory: what it keeps per LiveStream, and that it lets go of it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from kubernetes import client

from restream_operator.kube import Kube
from restream_operator.runtime import Runtime, all_up
from restream_operator.settings import Settings
from restream_operator.views import ChildViews, DeploymentView, PodView, Written


def runtime() -> Runtime:
    return Runtime(settings=Settings(), kube=Kube(client.ApiClient()))


def livestream(uid: str, generation: int, name: str = "launch") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "demo", "uid": uid, "generation": generation}}


def test_a_deleted_livestream_leaves_nothing_behind_its_children_included() -> None:
    rt = runtime()
    rt.remember(livestream("u1", 1))
    rt.stream("u1").reconciled_generation = 1
    rt.lock("u1")
    rt.child_changed(("demo", "launch"), DeploymentView("launch-ingest"))
    rt.child_changed(("demo", "launch"), PodView("launch-ingest-x", "ingest"))

    rt.forget("u1")
    # The garbage collector then deletes the children, whose events arrive late: a
    # MODIFIED (deletionTimestamp set) and the DELETED of each.
    rt.child_changed(("demo", "launch"), PodView("launch-ingest-x", "ingest", deleting=True))
    rt.child_deleted(("demo", "launch"), "Pod", "launch-ingest-x")
    rt.child_deleted(("demo", "launch"), "Deployment", "launch-ingest")

    assert rt.livestreams == {}
    assert rt.streams == {}
    assert rt.children == {}
    assert rt._locks == {}


def test_children_of_a_known_livestream_are_kept_while_it_has_none() -> None:
    rt = runtime()
    rt.remember(livestream("u1", 1))
    rt.child_changed(("demo", "launch"), PodView("p", "ingest"))
    rt.child_deleted(("demo", "launch"), "Pod", "p")
    # Its pod is being replaced: the entry stays for the next one.
    assert ("demo", "launch") in rt.children


def test_a_recreated_livestream_of_the_same_name_keeps_its_children_views() -> None:
    rt = runtime()
    rt.remember(livestream("old", 1))
    rt.remember(livestream("new", 1))  # deleted and created again: new uid, same key
    rt.forget("old")  # the old one's DELETED arrives after the new one's ADDED
    rt.child_changed(("demo", "launch"), PodView("p", "ingest"))
    rt.child_deleted(("demo", "launch"), "Pod", "p")
    assert ("demo", "launch") in rt.children


def test_newest_prefers_the_later_generation_whoever_brought_it() -> None:
    rt = runtime()
    stale, fresh = livestream("u1", 1), livestream("u1", 2)
    rt.remember(fresh)
    assert rt.newest(stale) is fresh
    rt.remember(stale)  # the watch lags behind the handler's body
    assert rt.newest(fresh) is fresh
    assert rt.newest(livestream("unknown", 1))["metadata"]["uid"] == "unknown"


def test_one_lock_per_livestream_from_any_thread() -> None:
    rt = runtime()
    seen: list[threading.Lock] = []
    threads = [threading.Thread(target=lambda: seen.append(rt.lock("u1"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(lock) for lock in seen}) == 1
    assert rt.lock("u2") is not rt.lock("u1")


def test_a_child_someone_else_changed_or_deleted_wakes_the_status_loop() -> None:
    rt = runtime()
    rt.remember(livestream("u1", 1))
    rt.stream("u1").handled = {("Deployment", "d"): frozenset({"ours-before", "ours-after"})}

    async def scenario() -> list[set[str]]:
        rt.bind_loop(asyncio.get_running_loop())
        out = []
        rt.child_changed(("demo", "launch"), Written("Deployment", "d", "ours-after"))
        out.append(await rt.woken(0.2))  # our own write: nothing to do
        rt.child_changed(("demo", "launch"), Written("Deployment", "d", "someone-else"))
        out.append(await rt.woken(0.2))
        rt.child_changed(("demo", "launch"), Written("Deployment", "unknown", "x"))
        out.append(await rt.woken(0.2))  # not one the reconcile applied
        rt.child_deleted(("demo", "launch"), "Deployment", "d")
        out.append(await rt.woken(0.2))
        threading.Thread(target=rt.wake, args=("u1",)).start()  # from a reconcile thread
        out.append(await rt.woken(2))
        return out

    assert asyncio.run(scenario()) == [set(), {"u1"}, set(), {"u1"}, {"u1"}]


def test_the_status_loop_is_woken_once_when_the_last_child_comes_up() -> None:
    """Ready is written when the last Deployment is available and every pod ready, not at
    the next tick; a change that leaves it up (or partly up) wakes nothing."""
    rt = runtime()
    rt.remember(livestream("u1", 1))
    key = ("demo", "launch")
    rt.stream("u1").handled = {
        ("Deployment", "launch-ingest"): frozenset(),
        ("Deployment", "launch-relay"): frozenset(),
        ("Service", "launch-ingest"): frozenset(),
    }

    async def scenario() -> list[set[str]]:
        rt.bind_loop(asyncio.get_running_loop())
        out = []
        for view in (
            DeploymentView("launch-ingest", available=1, rolled_out=True),
            PodView("ingest-x", "ingest", ready=True),
            DeploymentView("launch-relay", available=1, rolled_out=True),  # its pod not seen yet
        ):
            rt.child_changed(key, view)
        out.append(await rt.woken(0.2))
        rt.child_changed(key, PodView("relay-x", "relay", ready=False))
        out.append(await rt.woken(0.2))
        rt.child_changed(key, PodView("relay-x", "relay", ready=True))  # the last one
        out.append(await rt.woken(0.2))
        rt.child_changed(key, DeploymentView("launch-relay", available=2, rolled_out=True))
        out.append(await rt.woken(0.2))  # still up: nothing new to say
        rt.child_changed(key, PodView("relay-x", "relay", ready=False))
        rt.child_changed(key, PodView("relay-x", "relay", ready=True))
        out.append(await rt.woken(0.2))  # down and up again: Ready again, at once
        return out

    assert asyncio.run(scenario()) == [set(), set(), {"u1"}, set(), {"u1"}]


def test_a_livestream_not_reconciled_yet_is_never_up() -> None:
    views = ChildViews()
    views.put(DeploymentView("launch-ingest", available=1, rolled_out=True))
    assert not all_up(views, {})  # nothing applied by this process yet: the reconcile wakes
    assert all_up(views, {("Deployment", "launch-ingest"): frozenset()}) is False  # no pod
    views.put(PodView("p", "ingest", ready=True))
    assert all_up(views, {("Deployment", "launch-ingest"): frozenset()})


def test_a_spec_is_parsed_once_per_generation() -> None:
    rt = runtime()
    obj = livestream("u1", 1)
    obj["spec"] = {
        "restreams": [{"name": "A", "serverUrl": "rtmp://a.example.com/x", "streamKey": "k"}]
    }
    first = rt.owner(obj)
    assert rt.owner({**obj, "status": {"broadcasting": True}}) is first  # a status write
    changed = {**obj, "metadata": {**obj["metadata"], "generation": 2}}
    changed["spec"] = {"restreams": [], "suspend": True}
    second = rt.owner(changed)
    assert second is not first
    assert second.spec.suspend and not second.spec.restreams
    assert first.spec.restreams[0].name == "A"
