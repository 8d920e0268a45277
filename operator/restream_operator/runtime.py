"""What the operator keeps in memory between events (never the source of truth: a
restarted operator rebuilds all of it from the initial listings of its watches)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import naming
from .admission import DnsResolver
from .events import Poster
from .kube import Kube
from .lookups import AccessReviews, SecretCache
from .render import Owner, owner_from_object
from .rollout import ANNOTATION_ROLLOUT, ROLLOUT_NOW, Pending
from .secretrefs import MissingSecret
from .settings import Settings
from .status import ReconcileFailure
from .views import (
    ChildRef,
    ChildView,
    ChildViews,
    DeploymentView,
    Held,
    IndexKey,
    PodView,
    Written,
    livestream_key,
    name_held_view,
)


@dataclass
class StreamState:
    """Per LiveStream (by uid): the last reconcile's outcome, the last status written."""

    reconciled_generation: int | None = None
    reconciled_at: float = 0.0
    reconcile_failure: ReconcileFailure | None = None
    missing_secrets: tuple[MissingSecret, ...] = ()
    written: dict[str, Any] | None = None
    # What the ingest agent said last (None: not asked yet since the operator started).
    broadcasting: bool | None = None
    # Pod templates waiting for the broadcast to end (rollout.py).
    pending: tuple[Pending, ...] = ()
    # The children the last reconcile applied, each with the fingerprints it saw before
    # and after its write: any other fingerprint is someone else's change (drift).
    handled: dict[ChildRef, frozenset[str]] = field(default_factory=dict)

    # The on-air PodDisruptionBudget's last write (protection.py): when, and the
    # fingerprints it had before and after.
    budget_written_at: float = 0.0
    budget_fingerprints: frozenset[str] = frozenset()

    # The spec parsed, for the generation it was parsed at: the status loop needs it on
    # every pass, and parsing 1,000 specs every 5 s was a twentieth of the operator's CPU.
    owner: Owner | None = None
    owner_generation: int | None = None

    # The inputs of the last status pass that changed nothing, off air (statusloop.py):
    # (generation, Observed, the status before).
    unchanged_by: tuple[int, Any, dict[str, Any]] | None = None

    # Whether every Deployment the last reconcile applied was available and its pod
    # ready, at the last such event (all_up): the status loop is woken when it becomes so.
    all_up: bool = False

    def drifted(self, ref: ChildRef, fingerprint: str) -> bool:
        seen = self.handled.get(ref)
        return seen is not None and fingerprint not in seen


def all_up(views: ChildViews, handled: dict[ChildRef, frozenset[str]]) -> bool:
    """Whether every Deployment in ``handled`` (the last reconcile's children) has rolled
    out and is available, and the LiveStream's pods are ready."""
    names = [name for kind, name in handled if kind == "Deployment"]
    if not names:
        return False
    if not all((dep := views.deployments.get(name)) is not None and dep.up for name in names):
        return False
    pods = [pod for pod in views.pods.values() if not pod.deleting]
    # A pod each (Recreate, one replica), seen ready: the Deployments' availability may
    # come in before their pods' events, which the status reads too.
    return len(pods) >= len(names) and all(pod.ready for pod in pods)


@dataclass(frozen=True)
class Unreachable:
    """An agent's failures in a row, for its pod as it was then, and when to ask it
    next (agentpoll.py)."""

    pod: PodView
    failures: int
    next_poll: float


# Reviews run on threads of their own: the default executor also runs status writes and
# other API calls of up to 30 s, behind which a review would miss the webhook's 5 s.
ADMISSION_THREADS = 32


def _admission_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=ADMISSION_THREADS, thread_name_prefix="admission")


@dataclass
class Runtime:
    settings: Settings
    kube: Kube
    namespaces: tuple[str, ...] = ()  # the ones the operator serves; none: every one
    livestreams: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> object
    children: dict[IndexKey, ChildViews] = field(default_factory=dict)
    streams: dict[str, StreamState] = field(default_factory=dict)
    secret_cache: SecretCache = field(init=False)
    access_reviews: AccessReviews = field(init=False)
    events: Poster = field(default_factory=Poster)
    resolver: DnsResolver = field(default_factory=DnsResolver)
    admission_pool: ThreadPoolExecutor = field(default_factory=_admission_pool)
    # (kind, namespace, name) -> who holds it, for every object of the kinds the operator
    # applies and watches whole (watches.py); reconciles read it from their threads.
    holders: dict[tuple[str, str, str], Held] = field(default_factory=dict)
    held_kinds: frozenset[str] = frozenset()  # those whose watches have listed
    _uids: dict[IndexKey, str] = field(default_factory=dict)  # (namespace, name) -> uid
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _poll_slots: asyncio.Semaphore | None = None
    # (namespace, pod name) -> an agent that did not answer its last polls.
    unreachable: dict[tuple[str, str], Unreachable] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _wakeups: set[str] = field(default_factory=set)
    _woken: asyncio.Event | None = None

    def __post_init__(self) -> None:
        self.secret_cache = SecretCache(self.kube)
        self.access_reviews = AccessReviews(self.kube)

    def stream(self, uid: str) -> StreamState:
        return self.streams.setdefault(uid, StreamState())

    def owner(self, obj: dict[str, Any]) -> Owner:
        """``owner_from_object(obj)``, parsed once per generation (the spec changes only
        with it; name, namespace and uid never do)."""
        state = self.stream(obj["metadata"]["uid"])
        generation = obj["metadata"].get("generation")
        if state.owner is None or state.owner_generation != generation:
            state.owner, state.owner_generation = owner_from_object(obj), generation
        return state.owner

    def views(self, key: IndexKey) -> ChildViews:
        return self.children.setdefault(key, ChildViews())

    def lock(self, uid: str) -> threading.Lock:
        """The one lock a LiveStream's reconcile holds: the trigger's threads and the
        status loop's repair never apply the same children at once."""
        return self._locks.setdefault(uid, threading.Lock())

    def remember(self, obj: dict[str, Any]) -> None:
        uid = obj["metadata"]["uid"]
        self.livestreams[uid] = obj
        self._uids[livestream_key(obj)] = uid
        if (obj["metadata"].get("annotations") or {}).get(ANNOTATION_ROLLOUT) == ROLLOUT_NOW:
            self.wake(uid)

    def broadcasting(self, obj: dict[str, Any]) -> bool:
        """Whether the LiveStream broadcasts, as far as the operator knows: its agent's
        last answer, or else the status written before (by an earlier operator pod)."""
        known = self.stream(obj["metadata"]["uid"]).broadcasting
        return bool((obj.get("status") or {}).get("broadcasting")) if known is None else known

    def newest(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The newer of ``obj`` and what the watch delivered since (by generation: a
        handler may run on an event that a later spec change has already overtaken)."""
        seen = self.livestreams.get(obj["metadata"]["uid"])
        if seen is None:
            return obj
        generation = int(obj["metadata"].get("generation") or 0)
        return seen if int(seen["metadata"].get("generation") or 0) >= generation else obj

    def forget(self, uid: str) -> None:
        """Everything kept for a deleted LiveStream, its children's views included."""
        self.streams.pop(uid, None)
        self._locks.pop(uid, None)
        obj = self.livestreams.pop(uid, None)
        if obj is not None:
            key = livestream_key(obj)
            if self._uids.get(key) == uid:
                del self._uids[key]
            self.children.pop(key, None)

    def child_changed(self, key: IndexKey, view: ChildView) -> None:
        views = self.views(key)
        views.put(view)
        if isinstance(view, Written):
            uid = self._uids.get(key)
            state = self.streams.get(uid) if uid else None
            if uid and state and state.drifted((view.kind, view.name), view.fingerprint):
                self.wake(uid)  # someone else changed it: the status loop repairs it now
        elif isinstance(view, DeploymentView | PodView):
            uid = self._uids.get(key)
            state = self.streams.get(uid) if uid else None
            if uid and state:
                up = all_up(views, state.handled)
                if up and not state.all_up:
                    # Its last child came up: Ready is written now, not at the next tick
                    # (up to a poll interval, and a pass over every LiveStream, later).
                    self.wake(uid)
                state.all_up = up

    # ---- who holds the names the operator applies to (reconcile.Known) ---------------

    def hold(self, kind: str, type_: str, obj: dict[str, Any]) -> Held | None:
        """Records who holds the object's name (None: nobody now, it was deleted)."""
        meta = obj["metadata"]
        ref = (kind, meta.get("namespace") or "", meta["name"])
        if type_ == "DELETED":
            self.holders.pop(ref, None)
            return None
        held = self.holders[ref] = name_held_view(obj)
        return held

    def knows(self, kind: str) -> bool:
        return kind in self.held_kinds

    def holder(self, kind: str, namespace: str, name: str) -> Held | None:
        return self.holders.get((kind, namespace, name))

    def relays(self, namespace: str, livestream: str) -> list[str]:
        views = self.children.get((namespace, livestream))
        ingest = naming.ingest_name(livestream)
        return [name for name in (views.deployments if views else ()) if name != ingest]

    # ---- waking the status loop early ---------------------------------------------------

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._woken = asyncio.Event()

    def wake(self, uid: str) -> None:
        """Refresh (and, if needed, repair) this LiveStream now rather than at the next
        tick. Safe from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake, uid)

    def _wake(self, uid: str) -> None:
        self._wakeups.add(uid)
        if self._woken is not None:
            self._woken.set()

    async def woken(self, timeout: float) -> set[str]:
        """The LiveStreams woken within ``timeout`` seconds (empty if none was)."""
        if self._woken is None:
            await asyncio.sleep(timeout)
            return set()
        try:
            await asyncio.wait_for(self._woken.wait(), timeout)
        except TimeoutError:
            return set()
        self._woken.clear()
        out, self._wakeups = self._wakeups, set()
        return out

    def child_deleted(self, key: IndexKey, kind: str, name: str) -> None:
        if kind == "Pod":
            self.unreachable.pop((key[0], name), None)
        views = self.children.get(key)
        if views is None:
            return
        views.drop(kind, name)
        uid = self._uids.get(key)
        state = self.streams.get(uid) if uid else None
        if uid and state and (kind, name) in state.handled:
            self.wake(uid)  # one of its children is gone: the status loop sees to it
        # The garbage collector deletes a LiveStream's children after it: the last
        # DELETED event must not leave an empty entry behind for good.
        if views.empty() and key not in self._uids:
            del self.children[key]

    @property
    def poll_slots(self) -> asyncio.Semaphore:
        # Created lazily, inside the operator's event loop.
        if self._poll_slots is None:
            self._poll_slots = asyncio.Semaphore(self.settings.agent_poll_concurrency)
        return self._poll_slots
