"""The overview: what the console shows of each LiveStream, and the live feed of it.

A feed is a LIST then a WATCH from the listing's resourceVersion (``watches.Watch``,
which lists again on 410 Gone), made with the viewer's credentials: cluster-wide when
they may list LiveStreams in every namespace, else in their context's namespace.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes import client, config

from .. import models
from ..kube import Kube, KubeError, Obj
from ..status import BROADCASTING, INGEST_READY, RECONCILING, RELAYABLE, STALLED, UPDATE_PENDING
from ..watches import Watch

Summary = dict[str, Any]

# kstatus' abnormal-true conditions and the operator's wait for a broadcast to end:
# True is the news. Every other type is fine only when True.
_ABNORMAL_TRUE = frozenset({RECONCILING, STALLED, UPDATE_PENDING})


def needs_attention(condition: Obj) -> bool:
    """Whether a condition says something is not as it should be."""
    kind, state = condition.get("type"), condition.get("status")
    if kind == BROADCASTING:
        return False  # not a fault either way: the overview has a column for it
    if kind in _ABNORMAL_TRUE:
        return state == "True"
    if kind == RELAYABLE:
        return state == "False"  # Unknown whenever nobody publishes
    return state != "True"


def _ingest_state(conditions: list[Obj]) -> str | None:
    """The IngestReady condition in one word (Available, Progressing, SecretMissing,
    ImagePullBackOff...), or None before the operator has written it."""
    for c in conditions:
        if c.get("type") == INGEST_READY:
            return "Available" if c.get("status") == "True" else str(c.get("reason") or "")
    return None


def _live(shown: object, restreams: int) -> tuple[int | None, int]:
    """status.liveRestreams ("2/3") as numbers; before the operator has written it,
    unknown out of the spec's count."""
    if isinstance(shown, str):
        live, _, total = shown.partition("/")
        if live.isdigit() and total.isdigit():
            return int(live), int(total)
    return None, restreams


def summarize(obj: Obj) -> Summary:
    """What a row of the overview needs, and nothing else of the object."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    live, total = _live(status.get("liveRestreams"), len(spec.get("restreams") or []))
    broadcasting = status.get("broadcasting")
    return {
        "namespace": str(meta.get("namespace") or ""),
        "name": str(meta.get("name") or ""),
        "broadcasting": broadcasting if isinstance(broadcasting, bool) else None,
        "ingest": _ingest_state(conditions),
        "live": live,
        "total": total,
        "problems": [
            {k: str(c.get(k) or "") for k in ("type", "status", "reason", "message")}
            for c in conditions
            if needs_attention(c)
        ],
    }


def _key(summary: Summary) -> tuple[str, str]:
    return summary["namespace"], summary["name"]


@dataclass(frozen=True)
class Scope:
    namespace: str | None  # None: every namespace
    note: str  # why the view is narrower than the cluster, for the page ("" when it is not)


class Closable(Protocol):
    """A feed of a viewer's: the overview's, or a LiveStream page's."""

    def close(self) -> None: ...


class Viewer:
    """The person at the console, as the API server knows them: their kubeconfig's
    credentials (in a cluster, their bearer token), and their context's namespace (in a
    cluster, their ServiceAccount's or the one they signed in with)."""

    def __init__(
        self, kube: Kube, namespace: str, whose: str = "your kubeconfig context's"
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.whose = whose  # where the namespace came from, for the page's note
        # Open feeds: a session that ends must stop the watches made with its token.
        self.feeds: set[Closable] = set()
        self.retired = False

    def retire(self) -> None:
        """Stops every feed of this viewer, and any opened later (one whose listing was
        on its way): their credentials are no longer the console's to use."""
        self.retired = True
        for feed in list(self.feeds):
            feed.close()

    @classmethod
    def from_kubeconfig(cls, path: str | None, context: str | None) -> Viewer:
        """Raises config.ConfigException (or OSError) for a kubeconfig that cannot be
        used. Never the in-cluster ServiceAccount: the console has no identity of its
        own."""
        # $KUBECONFIG as it is now (the client reads it once, at import); it may list
        # several files, as kubectl's does.
        path = path or os.environ.get("KUBECONFIG") or config.KUBE_CONFIG_DEFAULT_LOCATION
        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, client_configuration=configuration
        )
        contexts, current = config.list_kube_config_contexts(path)  # type: ignore[no-untyped-call]
        if context:
            current = next((c for c in contexts if c["name"] == context), current)
        namespace = (current.get("context") or {}).get("namespace") or "default"
        return cls(Kube(client.ApiClient(configuration)), namespace)

    def scope(self) -> Scope:
        """Where this viewer may list LiveStreams. Blocks (call it in a thread); raises
        KubeError when they may not list them in their own namespace either."""
        try:
            self.kube.list_page(models.KIND, None, {}, "", 1)
            return Scope(None, "")
        except KubeError as exc:
            if exc.status != 403:
                raise
        self.kube.list_page(models.KIND, self.namespace, {}, "", 1)
        return Scope(
            self.namespace,
            f"You may not list LiveStreams in every namespace: showing namespace "
            f"{self.namespace} ({self.whose}) only.",
        )


class Feed:
    """One page's view of the LiveStreams in a scope: a snapshot, then every change,
    as summaries, until closed."""

    def __init__(self, viewer: Viewer, namespace: str | None) -> None:
        self.closed = asyncio.Event()
        self._queue: asyncio.Queue[tuple[str, Summary] | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self._watch = Watch(viewer.kube, models.KIND, namespace, {}, self._deliver, loop)
        self._viewer = viewer
        viewer.feeds.add(self)
        if viewer.retired:
            self.close()

    def _deliver(self, kind: str, obj: Obj) -> None:
        if not self.closed.is_set():
            self._queue.put_nowait((kind, summarize(obj)))

    async def snapshot(self) -> list[Summary] | None:
        """Every LiveStream of the first listing (and of any event since), sorted by
        namespace and name; None when the feed was closed first."""
        self._watch.start()
        synced = asyncio.ensure_future(self._watch.synced.wait())
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait({synced, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            synced.cancel()
            closed.cancel()
        if self.closed.is_set():
            return None
        # The watch hands the listing over before it sets `synced`, in order, on this
        # loop: the queue holds all of it now.
        rows: dict[tuple[str, str], Summary] = {}
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                return None
            kind, summary = item
            if kind == "DELETED":
                rows.pop(_key(summary), None)
            else:
                rows[_key(summary)] = summary
        return [rows[k] for k in sorted(rows)]

    async def next(self, timeout: float) -> tuple[str, Summary] | None:
        """The next change (ADDED, MODIFIED or DELETED, and the summary), or None once
        closed; TimeoutError after ``timeout`` seconds without one."""
        return await asyncio.wait_for(self._queue.get(), timeout)

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self._watch.stop()
            self._queue.put_nowait(None)
            self._viewer.feeds.discard(self)

    def join(self, timeout: float) -> None:
        """Waits (blocking) for the watch's thread to end after close()."""
        self._watch.join(timeout)
