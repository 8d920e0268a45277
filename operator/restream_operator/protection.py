"""The on-air PodDisruptionBudget: there while a LiveStream broadcasts, gone when not.

Kept by the status loop, which knows when a broadcast starts and ends, rather than by
the reconcile path, which follows the spec. Eviction refuses to act on a budget whose
status the disruption controller has not yet caught up with, so a budget created as a
broadcast starts protects at once. A budget left behind (the operator was down when the
broadcast ended) is deleted at the next look, and one changed by someone else while
on air is applied again.
"""

from __future__ import annotations

import asyncio
import logging
import time

from . import naming
from .reconcile import conflict
from .render import Owner
from .render.disruption import on_air_budget
from .runtime import Runtime, StreamState
from .views import ChildViews, fingerprint

log = logging.getLogger(__name__)

KIND = "PodDisruptionBudget"
# A write at most this often per LiveStream, whatever a watch event says meanwhile.
RETRY_SECONDS = 3.0


async def keep(
    runtime: Runtime, owner: Owner, views: ChildViews, state: StreamState, broadcasting: bool
) -> None:
    """Creates, restores or deletes the LiveStream's on-air budget as ``broadcasting``
    and the protect_live_pods setting say."""
    name = naming.on_air_budget(owner.name)
    seen = views.written.get((KIND, name))
    want = runtime.settings.protect_live_pods and broadcasting
    if time.monotonic() - state.budget_written_at < RETRY_SECONDS:
        return
    where = f"{owner.namespace}/{name}"
    try:
        await _write(runtime, owner, state, want, seen, where)
    except Exception as exc:  # the status is written all the same; the next look retries
        log.error(f"{where}: could not {'apply' if want else 'delete'} it: {exc}")


async def _write(
    runtime: Runtime, owner: Owner, state: StreamState, want: bool, seen: str | None, where: str
) -> None:
    name = naming.on_air_budget(owner.name)
    if want and (seen is None or seen not in state.budget_fingerprints):
        state.budget_written_at = time.monotonic()
        if not await _ours_or_free(runtime, owner, name):
            return
        after = await asyncio.to_thread(runtime.kube.apply, on_air_budget(owner))
        state.budget_fingerprints = frozenset(
            fp for fp in (seen, fingerprint(after)) if fp is not None
        )
        log.info(f"{where}: on air: voluntary evictions of its pods wait for the end")
    elif not want and seen is not None:
        state.budget_written_at = time.monotonic()
        if not await _ours_or_free(runtime, owner, name):
            return
        await asyncio.to_thread(runtime.kube.delete, KIND, owner.namespace, name)
        state.budget_fingerprints = frozenset()
        log.info(f"{where}: off air: its pods may be evicted again")


async def _ours_or_free(runtime: Runtime, owner: Owner, name: str) -> bool:
    """Whether the budget's name is free or this LiveStream's: one of someone else's is
    never taken over or deleted (labels alone prove nothing: anyone may set them)."""
    found = await asyncio.to_thread(runtime.kube.get, KIND, owner.namespace, name)
    held_by = conflict(owner, KIND, found) if found is not None else ""
    if held_by:
        log.warning(f"{owner.namespace}/{owner.name}: the pods are not protected: {held_by}")
    return not held_by
