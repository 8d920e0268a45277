"""What the operator keeps in memory between events (never the source of truth: a
restarted operator rebuilds all of it from the initial listings of its watches)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .admission import DnsResolver, SecretRef, SecretState
from .kube import Kube, KubeError
from .settings import Settings
from .views import ChildViews, IndexKey


@dataclass
class StreamState:
    """Per LiveStream (by uid): the last reconcile's outcome, the last status written."""

    reconciled_generation: int | None = None
    reconciled_at: float = 0.0
    reconcile_error: str | None = None
    missing_secrets: tuple[str, ...] = ()
    written: dict[str, Any] | None = None


class SecretCache:
    """Whether referenced Secret keys exist, remembered briefly: a warning may be a few
    seconds stale, but 50 concurrent reviews must not mean 100 API calls."""

    TTL_SECONDS = 10.0
    # A review must finish well within the webhook's 5 s: not the client's usual 30 s.
    READ_TIMEOUT_SECONDS = 1.0

    def __init__(self, kube: Kube) -> None:
        self.kube = Kube(kube.api, timeout=self.READ_TIMEOUT_SECONDS)
        self._seen: dict[SecretRef, tuple[float, SecretState | None]] = {}

    def lookup(self, ref: SecretRef) -> SecretState | None:
        now = time.monotonic()
        hit = self._seen.get(ref)
        if hit is not None and now - hit[0] < self.TTL_SECONDS:
            return hit[1]
        found: SecretState | None
        try:
            secret = self.kube.get("Secret", ref.namespace, ref.name)
        except (KubeError, OSError):
            found = None  # unknown: no warning rather than a wrong one
        else:
            if secret is None:
                found = SecretState.MISSING
            elif ref.key in (secret.get("data") or {}):
                found = SecretState.PRESENT
            else:
                found = SecretState.NO_KEY
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[ref] = (now, found)
        return found


# Reviews run on threads of their own: the default executor also runs status writes and
# other API calls of up to 30 s, behind which a review would miss the webhook's 5 s.
ADMISSION_THREADS = 32


def _admission_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=ADMISSION_THREADS, thread_name_prefix="admission")


@dataclass
class Runtime:
    settings: Settings
    kube: Kube
    livestreams: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> object
    children: dict[IndexKey, ChildViews] = field(default_factory=dict)
    streams: dict[str, StreamState] = field(default_factory=dict)
    secret_cache: SecretCache = field(init=False)
    resolver: DnsResolver = field(default_factory=DnsResolver)
    admission_pool: ThreadPoolExecutor = field(default_factory=_admission_pool)
    _poll_slots: asyncio.Semaphore | None = None

    def __post_init__(self) -> None:
        self.secret_cache = SecretCache(self.kube)

    def stream(self, uid: str) -> StreamState:
        return self.streams.setdefault(uid, StreamState())

    def views(self, key: IndexKey) -> ChildViews:
        return self.children.setdefault(key, ChildViews())

    def forget(self, uid: str) -> None:
        self.streams.pop(uid, None)
        self.livestreams.pop(uid, None)

    @property
    def poll_slots(self) -> asyncio.Semaphore:
        # Created lazily, inside the operator's event loop.
        if self._poll_slots is None:
            self._poll_slots = asyncio.Semaphore(self.settings.agent_poll_concurrency)
        return self._poll_slots
