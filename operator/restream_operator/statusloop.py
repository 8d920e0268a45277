"""The status loop: every poll interval, every LiveStream's status is recomputed from
the in-memory views and the agents' /status, and written only when it changed.

It also keeps what depends on the broadcast rather than the spec: it reconciles when
a child went missing or was changed by someone else, when pod templates that waited
for a broadcast may go, or when a rollout is forced (all through the one reconcile
path, so a live stream's pods stay held), and it keeps the on-air
PodDisruptionBudget (protection.py). Reconciles and watch events wake it, so none of
this waits for the next tick.

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

from . import metrics, protection, rollout
from .agentpoll import poll_all
from .reconcile import find_missing_secrets, reconcile
from .runtime import Runtime, StreamState
from .status import STATUS_KEYS, Observed, compute_status, transitions
from .views import ChildViews

log = logging.getLogger(__name__)

# A child still missing this long after the last reconcile gets recreated (sooner, the
# garbage collector or a watch event may still be on its way).
REPAIR_AFTER_SECONDS = 10.0
# Other reasons reconcile again at most this often: two controllers fighting over a
# field (an autoscaler on a relay's replicas) must not flood the API.
RETRY_AFTER_SECONDS = 3.0
# The children whose watch events the operator receives (handlers.py).
WATCHED_KINDS = frozenset({"Deployment", "Service", "NetworkPolicy"})
# Status writes in flight at once (each is a blocking API call in a worker thread).
WRITE_SLOTS = 4


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge_diff(previous: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386: an object's keys that changed, recursively, and null for those gone
    (a merge patch merges objects: a key left out would stay, e.g. status.ingest's
    codecs after the broadcast ended). Lists are replaced whole."""
    patch: dict[str, Any] = {}
    for k, v in new.items():
        old = previous.get(k)
        if old == v:
            continue
        patch[k] = _merge_diff(old, v) if isinstance(old, dict) and isinstance(v, dict) else v
    patch.update({k: None for k in previous if k not in new})
    return patch


def status_patch(previous: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch from `previous` to `new`, over the status fields we own."""
    owned = {k: v for k, v in previous.items() if k in STATUS_KEYS}
    return _merge_diff(owned, new)


async def run(runtime: Runtime) -> None:
    runtime.bind_loop(asyncio.get_running_loop())
    write_slots = asyncio.Semaphore(WRITE_SLOTS)
    interval = runtime.settings.agent_poll_seconds
    while True:
        started = time.monotonic()
        await _refresh_all(runtime, list(runtime.livestreams), write_slots)
        # Until the next tick, refresh at once what asked for it: a reconcile just done,
        # a child someone changed, a rollout forced.
        while (left := interval - (time.monotonic() - started)) > 0:
            woken = await runtime.woken(max(0.1, left))
            await _refresh_all(runtime, sorted(woken), write_slots)


async def _refresh_all(runtime: Runtime, uids: list[str], write_slots: asyncio.Semaphore) -> None:
    results = await asyncio.gather(
        *(refresh(runtime, uid, write_slots) for uid in uids), return_exceptions=True
    )
    for uid, result in zip(uids, results, strict=True):
        if isinstance(result, Exception):
            log.error(f"status refresh of {uid} failed: {result!r}")


async def refresh(runtime: Runtime, uid: str, write_slots: asyncio.Semaphore) -> None:
    obj = runtime.livestreams.get(uid)
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        return
    owner = runtime.owner(obj)
    state = runtime.stream(uid)
    views = runtime.views((owner.namespace, owner.name))
    generation = int(obj["metadata"].get("generation") or 0)

    pods = views.pods_by_group()
    ingest_doc, relay_docs, encoder_docs = await poll_all(runtime, owner, pods)
    if ingest_doc is not None:
        state.broadcasting = bool(ingest_doc.get("publishing"))
    if state.reconciled_generation == generation:
        await _reconcile_if_needed(runtime, obj, views, state)
        if state.missing_secrets:  # recheck: the Secret may have been created since
            state.missing_secrets = tuple(
                await asyncio.to_thread(find_missing_secrets, owner, runtime.kube)
            )

    observed = Observed(
        deployments=dict(views.deployments),
        pods=pods,
        service=views.service,
        ingest_agent=ingest_doc,
        relay_agents=relay_docs,
        encoder_agents=encoder_docs,
        missing_secrets=state.missing_secrets,
        reconciled_generation=state.reconciled_generation,
        reconcile_failure=state.reconcile_failure,
        pending=state.pending,
    )
    # We are the only writer of status: our last write is newer than what the watch
    # may have delivered so far.
    previous = state.written if state.written is not None else dict(obj.get("status") or {})
    # Off air, the status is a function of what was observed and of the status before
    # (the time only stamps changes), so the same inputs as a pass that changed nothing
    # change nothing again: not recomputed (a tenth of the operator's CPU at 1,000
    # LiveStreams, converging or idle). On air, time alone moves it (the start's grace).
    quiet = not previous.get("broadcasting") and not (ingest_doc or {}).get("publishing")
    inputs = (generation, observed, previous)
    if quiet and state.unchanged_by == inputs:
        await protection.keep(runtime, owner, views, state, False)
        return
    new = compute_status(owner, generation, previous, observed, runtime.settings, _now())
    await protection.keep(runtime, owner, views, state, bool(new.get("broadcasting")))
    patch = status_patch(previous, new)
    state.unchanged_by = inputs if quiet and not patch else None
    if not patch:
        return  # nothing changed: no write, no churn
    if state.reconciled_generation is None and state.reconcile_failure is None:
        # Not reconciled since this process started: "being applied" would be a guess,
        # and after a restart a wrong one, taken back a moment later.
        return
    async with write_slots:
        await asyncio.to_thread(
            runtime.kube.patch_status, owner.namespace, owner.name, {"status": patch}
        )
        metrics.STATUS_WRITES.inc()
        state.written = new
        for t in transitions(previous, new):
            runtime.events.post(obj, t.type, t.reason, t.message)


def repair_reason(
    obj: dict[str, Any], views: ChildViews, state: StreamState, broadcasting: bool, now: float
) -> str | None:
    """Why the children need a reconcile although the spec has not changed, if they do:
    one is missing or someone else changed it, what waited for the broadcast can go,
    or a rollout is forced."""
    since = now - state.reconciled_at
    expected = {ref for ref in state.handled if ref[0] in WATCHED_KINDS}
    missing = expected - set(views.written)
    # One seen deleted is gone; one never seen may be a watch event still on its way.
    deleted = missing & views.gone
    if (deleted and since >= RETRY_AFTER_SECONDS) or (missing and since >= REPAIR_AFTER_SECONDS):
        return f"missing: {', '.join(sorted(f'{k}/{n}' for k, n in missing))}"
    if since < RETRY_AFTER_SECONDS:
        return None
    drifted = sorted(
        f"{kind}/{name}"
        for (kind, name), fp in views.written.items()
        if state.drifted((kind, name), fp)
    )
    if drifted:
        return f"changed by someone else: {', '.join(drifted)}"
    if state.pending and not broadcasting:
        return "the broadcast is not on: applying what waited"
    annotations = obj["metadata"].get("annotations") or {}
    if annotations.get(rollout.ANNOTATION_ROLLOUT) == rollout.ROLLOUT_NOW:
        return f"{rollout.ANNOTATION_ROLLOUT}={rollout.ROLLOUT_NOW}"
    return None


async def _reconcile_if_needed(
    runtime: Runtime, obj: dict[str, Any], views: ChildViews, state: StreamState
) -> None:
    uid = obj["metadata"]["uid"]
    if runtime.lock(uid).locked():
        return  # a reconcile is running: it wakes the loop when done
    why = repair_reason(obj, views, state, runtime.broadcasting(obj), time.monotonic())
    if why is None:
        return
    where = f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"
    log.warning(f"{where}: reconciling: {why}")
    state.reconciled_at = time.monotonic()  # one attempt per RETRY_AFTER_SECONDS at most
    try:
        await asyncio.to_thread(reconcile, runtime, obj, "repair")
    except Exception as exc:  # recorded by reconcile; the next tick tries again
        log.error(f"{where}: repair failed: {exc}")
