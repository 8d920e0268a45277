"""kopf handlers: thin wiring from Kubernetes events to the reconcile and status paths.

- watch events of LiveStreams (kopf's on.event) -> ``Runtime.livestreams``, and a
  reconcile of every generation not reconciled yet (trigger.py: nothing written to the
  LiveStream for kopf's bookkeeping)
- watch events of our Deployments, Pods, Services,
  NetworkPolicies and PodDisruptionBudgets (watches.py, our own) -> the in-memory views
  in ``Runtime`` (no API request needed to compute a status or to know that a child is
  as it was applied, and a child someone else changed is noticed at once)
- startup -> the children's watches, then the status loop (statusloop.py): poll agents,
  recompute, write on change.

Nothing here needs a finalizer: deleting a LiveStream, or its namespace, never waits for
the operator (owner references and the garbage collector remove the children).
The operator's in-memory state (``Runtime``) reaches every handler through kopf's memo.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import kopf

from . import models, naming, statusloop
from .runtime import Runtime
from .trigger import Trigger
from .views import deployment_view, key_of, pod_view, service_view, written_view
from .watches import Watch

OURS = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}


# ---- in-memory views -------------------------------------------------------------------


async def track_livestream(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    runtime.events.capture()  # for the status loop, which runs in no handler's context
    trigger: Trigger | None = memo.get("trigger")
    if type == "DELETED":
        runtime.forget(body.meta["uid"])
        if trigger is not None:
            trigger.forget(body.meta["uid"])
        return
    obj = dict(body)
    runtime.remember(obj)
    if trigger is not None:
        trigger.seen(obj, listed=type is None)  # kopf's initial listing has no type


def _track(
    kind: str, type: str | None, obj: dict[str, Any], runtime: Runtime, fp: str | None = None
) -> None:
    key = key_of(obj)
    if key is None:
        return
    if type == "DELETED":
        runtime.child_deleted(key, kind, obj["metadata"]["name"])
        return
    if kind == "Deployment":
        runtime.child_changed(key, deployment_view(obj))
    elif kind == "Pod":
        runtime.child_changed(key, pod_view(obj))
        return  # the ReplicaSet's to write, not the operator's
    elif kind == "Service" and obj["metadata"]["name"] == naming.ingest_name(key[1]):
        # Only the public ingest Service has endpoints worth reporting.
        runtime.child_changed(key, service_view(obj))
    runtime.child_changed(key, written_view(kind, obj, fp))


def deliver(runtime: Runtime, kind: str) -> Callable[[str, dict[str, Any]], None]:
    """What a watch of ``kind`` (watches.py) does with each event, on the event loop."""

    def on_event(type_: str, obj: dict[str, Any]) -> None:
        held = runtime.hold(kind, type_, obj) if kind in HELD_KINDS else None
        labels = obj["metadata"].get("labels") or {}
        if labels.get(naming.LABEL_MANAGED_BY) == naming.MANAGED_BY:
            # The fingerprint once per event (held_view's, when it computed one).
            _track(
                kind, type_, obj, runtime, held.fingerprint if held and held.fingerprint else None
            )

    return on_event


# ---- the status loop ------------------------------------------------------------------


# The children's watches: (kind, the labels the API server filters on). The kinds the
# operator applies are watched whole, so that it knows every name taken in them.
WATCHED: tuple[tuple[str, dict[str, str]], ...] = (
    ("Deployment", {}),
    ("Service", {}),
    ("NetworkPolicy", {}),
    ("Pod", OURS),
    ("PodDisruptionBudget", OURS),
)
HELD_KINDS = frozenset(kind for kind, selector in WATCHED if not selector)


async def start_status_loop(memo: kopf.Memo, **_: Any) -> None:
    """Starts the children's watches and, once each has listed, the status loop.
    Startup handlers run before kopf's own watches start, so the first reconciles and
    the status loop's first pass after a restart see every child as it is, not as
    missing (which would write a status that says Pending and take it back a moment
    later, and read each child again)."""
    runtime: Runtime = memo.runtime
    loop = asyncio.get_running_loop()
    memo.watches = [
        Watch(runtime.kube, kind, namespace, selector, deliver(runtime, kind), loop)
        for kind, selector in WATCHED
        for namespace in runtime.namespaces or (None,)
    ]
    for watch in memo.watches:
        watch.start()
    await asyncio.gather(*(watch.synced.wait() for watch in memo.watches))
    runtime.held_kinds = HELD_KINDS
    # Before kopf's LiveStream watch starts (after every startup handler): its listing
    # reconciles each LiveStream once, with the children's views filled.
    memo.trigger = Trigger(runtime, loop)
    # Created inside kopf's context, so kopf.event() works from the loop.
    memo.status_loop = asyncio.create_task(statusloop.run(memo.runtime))


async def stop_status_loop(memo: kopf.Memo, **_: Any) -> None:
    trigger: Trigger | None = memo.get("trigger")
    if trigger is not None:
        trigger.stop()
    task: asyncio.Task[None] | None = memo.get("status_loop")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    watches: list[Watch] = memo.get("watches") or []
    for watch in watches:
        watch.stop()
    for watch in watches:
        await asyncio.to_thread(watch.join, 5.0)


# ---- registration ----------------------------------------------------------------------


def register(registry: kopf.OperatorRegistry) -> None:
    ls = (models.GROUP, models.VERSION, models.PLURAL)
    # No create/update/resume handlers: kopf would write its last-handled annotation on
    # every LiveStream it handled (trigger.py says why not).
    kopf.on.event(*ls, registry=registry)(track_livestream)
    kopf.on.startup(registry=registry)(start_status_loop)
    kopf.on.cleanup(registry=registry)(stop_status_loop)
