"""The status loop: every poll interval, every LiveStream's status is recomputed from
the in-memory views and the agents' /status, and written only when it changed.

One loop for all LiveStreams (not a kopf timer each: timers need a finalizer, and a
finalizer makes deleting a LiveStream or its namespace wait for the operator). Agent
polls and status writes are bounded, so 1000 LiveStreams never mean 1000 connections.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

from . import naming
from .agentpoll import poll_agents
from .reconcile import find_missing_secrets, reconcile
from .render import Owner, owner_from_object, render_children
from .runtime import Runtime, StreamState
from .status import STATUS_KEYS, Observed, compute_status, transitions
from .views import ChildViews

log = logging.getLogger(__name__)

# A child still missing this long after the last reconcile gets recreated.
REPAIR_AFTER_SECONDS = 10.0
# Status writes in flight at once (each is a blocking API call in a worker thread).
WRITE_SLOTS = 4


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_patch(previous: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch from `previous` to `new`, over the status fields we own."""
    patch: dict[str, Any] = {k: v for k, v in new.items() if previous.get(k) != v}
    patch.update({k: None for k in STATUS_KEYS if k in previous and k not in new})
    return patch


async def run(runtime: Runtime) -> None:
    write_slots = asyncio.Semaphore(WRITE_SLOTS)
    interval = runtime.settings.agent_poll_seconds
    while True:
        started = time.monotonic()
        uids = list(runtime.livestreams)
        results = await asyncio.gather(
            *(refresh(runtime, uid, write_slots) for uid in uids), return_exceptions=True
        )
        for uid, result in zip(uids, results, strict=True):
            if isinstance(result, Exception):
                log.error(f"status refresh of {uid} failed: {result!r}")
        await asyncio.sleep(max(0.1, interval - (time.monotonic() - started)))


async def refresh(runtime: Runtime, uid: str, write_slots: asyncio.Semaphore) -> None:
    obj = runtime.livestreams.get(uid)
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        return
    owner = owner_from_object(obj)
    state = runtime.stream(uid)
    views = runtime.views((owner.namespace, owner.name))
    generation = int(obj["metadata"].get("generation") or 0)

    if state.reconciled_generation == generation:
        await _repair_if_needed(runtime, obj, owner, views, state)
        if state.missing_secrets:  # recheck: the Secret may have been created since
            state.missing_secrets = tuple(
                await asyncio.to_thread(find_missing_secrets, owner, runtime.kube)
            )

    pods = views.pods_by_group()
    ingest_doc, relay_docs = await poll_agents(runtime, owner, pods)
    observed = Observed(
        deployments=dict(views.deployments),
        pods=pods,
        service=views.service,
        ingest_agent=ingest_doc,
        relay_agents=relay_docs,
        missing_secrets=state.missing_secrets,
        reconciled_generation=state.reconciled_generation,
        reconcile_failure=state.reconcile_failure,
    )
    # We are the only writer of status: our last write is newer than what the watch
    # may have delivered so far.
    previous = state.written if state.written is not None else dict(obj.get("status") or {})
    new = compute_status(owner, generation, previous, observed, runtime.settings, _now())
    patch = status_patch(previous, new)
    if not patch:
        return  # nothing changed: no write, no churn
    async with write_slots:
        await asyncio.to_thread(
            runtime.kube.patch_status, owner.namespace, owner.name, {"status": patch}
        )
        state.written = new
        for t in transitions(previous, new):
            runtime.events.post(obj, t.type, t.reason, t.message)


async def _repair_if_needed(
    runtime: Runtime, obj: dict[str, Any], owner: Owner, views: ChildViews, state: StreamState
) -> None:
    if time.monotonic() - state.reconciled_at < REPAIR_AFTER_SECONDS:
        return
    expected = set(render_children(owner, runtime.settings).relays.values())
    expected.add(naming.ingest_name(owner.name))
    missing = sorted(expected - set(views.deployments))
    if not missing:
        return
    log.warning(f"{owner.namespace}/{owner.name}: children missing, reconciling: {missing}")
    state.reconciled_at = time.monotonic()  # one attempt per REPAIR_AFTER_SECONDS at most
    try:
        await asyncio.to_thread(reconcile, runtime, obj, "repair")
    except Exception as exc:  # recorded by reconcile; the next tick tries again
        log.error(f"{owner.namespace}/{owner.name}: repair failed: {exc}")
