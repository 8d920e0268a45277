"""When a LiveStream's spec is reconciled: on its watch events, whenever its
``metadata.generation`` is one this operator process has not reconciled yet.

kopf's create/update/resume handlers did this before, but kopf keeps what it handled in
the object itself: one PATCH of its last-handled annotation per new spec, and progress
annotations on every retry. At 1,000 new LiveStreams that was 1,000 writes (and the
events they caused) that nobody reads. Here nothing is written for the bookkeeping:

- every LiveStream the watch lists at startup is reconciled once ("resume"); an
  unchanged one writes nothing (reconcile.py skips children applied as they are);
- afterwards, a new generation is reconciled ("create" when this process has not
  reconciled that LiveStream yet, "update" when it has); a status write, a label or an
  annotation changes no generation and reconciles nothing;
- a failure is retried as kopf retried it: after 5 s, 30 s for a NameConflict (the other
  object may go), and an InvalidSpec not until the spec changes; a newer generation is
  reconciled at once, whatever retry waits;
- events that arrive while a LiveStream's reconcile is queued or running add no second
  one: when it ends, the newest generation seen is compared with what it reconciled.

Reconciles run through ``reconcile.reconcile`` (its per-LiveStream lock: the status
loop's repairs never overlap them) on a bounded pool of threads.

LiveStreams written by an older operator carry kopf's annotations
(``restream.dev/last-handled-configuration``, perhaps progress ones): they are left
there on purpose. Removing them would be a write per LiveStream at the first restart,
which must write nothing; nothing reads them any more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import reconcile
from .runtime import Runtime

log = logging.getLogger(__name__)

# Reconciles in flight at once (each one LiveStream's): they mostly wait on the API
# server, so more than its cores; 200 LiveStreams converged in 65 s with 32 against 69 s
# with 16 (bench.reconcile). Matched by kube.CONNECTIONS.
RECONCILE_THREADS = 32
# What kopf's TemporaryError gave the handler before (handlers.py): the same delays.
RETRY_SECONDS = 5.0
CONFLICT_RETRY_SECONDS = 30.0

Reconcile = Callable[[Runtime, dict[str, Any], str], object]


@dataclass(frozen=True)
class Retry:
    generation: int  # the generation that failed
    cause: str
    timer: asyncio.TimerHandle


def _generation(obj: dict[str, Any]) -> int:
    return int(obj["metadata"].get("generation") or 0)


class Trigger:
    """Lives on the operator's event loop: ``seen`` and ``forget`` are called from the
    LiveStream watch's handler; reconciles run on the pool and report back to the loop."""

    def __init__(
        self,
        runtime: Runtime,
        loop: asyncio.AbstractEventLoop,
        *,
        run: Reconcile = reconcile.reconcile,
        threads: int = RECONCILE_THREADS,
        retry_seconds: float = RETRY_SECONDS,
        conflict_retry_seconds: float = CONFLICT_RETRY_SECONDS,
    ) -> None:
        self.runtime = runtime
        self._loop = loop
        self._run = run
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="reconcile")
        self._retry_seconds = retry_seconds
        self._conflict_retry_seconds = conflict_retry_seconds
        # uid -> the generation reconciled, or refused for good (InvalidSpec): nothing
        # more to do until a newer one is seen.
        self.done: dict[str, int] = {}
        self._busy: set[str] = set()  # queued or running
        self.retries: dict[str, Retry] = {}

    def seen(self, obj: dict[str, Any], listed: bool) -> None:
        """A watch event of ``obj`` (already in ``runtime.livestreams``); ``listed``:
        from the watch's initial listing."""
        meta = obj["metadata"]
        uid = meta["uid"]
        if meta.get("deletionTimestamp") or uid in self._busy:
            return
        generation = _generation(obj)
        if self.done.get(uid) == generation:
            return
        retry = self.retries.get(uid)
        if retry is not None:
            if retry.generation == generation:
                return  # its retry is on its way
            retry.timer.cancel()  # a new spec: now, not after the old one's delay
            del self.retries[uid]
        cause = "resume" if listed else "update" if uid in self.done else "create"
        self._start(uid, cause)

    def forget(self, uid: str) -> None:
        """The LiveStream is gone. A reconcile still running finds it gone (reconcile
        works from the newest object seen) and starts no other."""
        self.done.pop(uid, None)
        retry = self.retries.pop(uid, None)
        if retry is not None:
            retry.timer.cancel()

    def stop(self) -> None:
        for retry in self.retries.values():
            retry.timer.cancel()
        self.retries.clear()
        # A reconcile in flight finishes (its API calls have timeouts); queued ones go.
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _start(self, uid: str, cause: str) -> None:
        obj = self.runtime.livestreams.get(uid)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return
        self._busy.add(uid)
        future = self._loop.run_in_executor(self._pool, self._reconcile, obj, cause)
        future.add_done_callback(lambda f: self._finished(uid, cause, f))

    def _reconcile(self, obj: dict[str, Any], cause: str) -> tuple[int, float | None]:
        """In a pool thread: (the generation handled, the delay before a retry or None)."""
        uid = obj["metadata"]["uid"]
        generation = _generation(self.runtime.newest(obj))
        try:
            self._run(self.runtime, obj, cause)
        except reconcile.InvalidSpec:
            return generation, None  # recorded and reported: wait for a new spec
        except reconcile.NameConflict:
            return generation, self._conflict_retry_seconds
        except Exception:  # recorded and logged by reconcile
            return generation, self._retry_seconds
        state = self.runtime.streams.get(uid)
        done = state.reconciled_generation if state is not None else None
        return (done if done is not None else generation), None

    def _finished(
        self, uid: str, cause: str, future: asyncio.Future[tuple[int, float | None]]
    ) -> None:
        self._busy.discard(uid)
        if future.cancelled():
            return  # the operator is stopping
        obj = self.runtime.livestreams.get(uid)
        if obj is None:
            return  # deleted meanwhile
        delay: float | None
        exc = future.exception()
        if exc is not None:  # a bug, not a reconcile failure: retry as kopf would have
            log.error(f"reconcile of {uid} failed: {exc!r}")
            generation, delay = _generation(obj), self._retry_seconds
        else:
            generation, delay = future.result()
        if delay is None:
            self.done[uid] = generation
            if _generation(obj) != generation:
                self.seen(obj, listed=False)  # a newer spec arrived meanwhile
            return
        if _generation(obj) != generation:
            self.seen(obj, listed=False)  # the failed spec is already overtaken
            return
        where = f"{obj['metadata'].get('namespace')}/{obj['metadata'].get('name')}"
        log.warning(f"{where}: {cause}: retrying in {delay:g} s")
        timer = self._loop.call_later(delay, self._retry, uid)
        self.retries[uid] = Retry(generation, cause, timer)

    def _retry(self, uid: str) -> None:
        retry = self.retries.pop(uid, None)
        if retry is not None and uid not in self._busy:
            self._start(uid, retry.cause)
