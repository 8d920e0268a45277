"""What the operator keeps in memory between events (never the source of truth: a
restarted operator rebuilds all of it from the initial listings of its watches)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
    """Whether referenced Secrets exist, remembered briefly: a warning may be a few
    seconds stale, but 50 concurrent reviews must not mean 100 API calls."""

    TTL_SECONDS = 10.0

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._seen: dict[tuple[str, str, str], tuple[float, bool | None]] = {}

    def lookup(self, namespace: str, name: str, key: str) -> bool | None:
        now = time.monotonic()
        hit = self._seen.get((namespace, name, key))
        if hit is not None and now - hit[0] < self.TTL_SECONDS:
            return hit[1]
        try:
            secret = self.kube.get("Secret", namespace, name)
            found: bool | None = secret is not None and key in (secret.get("data") or {})
        except (KubeError, OSError):
            found = None  # unknown: no warning rather than a wrong one
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[(namespace, name, key)] = (now, found)
        return found

    def for_namespace(self, namespace: str | None) -> Callable[[str, str], bool | None] | None:
        if not namespace:
            return None
        return lambda name, key: self.lookup(namespace, name, key)


@dataclass
class Runtime:
    settings: Settings
    kube: Kube
    livestreams: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> object
    children: dict[IndexKey, ChildViews] = field(default_factory=dict)
    streams: dict[str, StreamState] = field(default_factory=dict)
    secret_cache: SecretCache = field(init=False)
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
