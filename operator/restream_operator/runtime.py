"""What the operator keeps in memory between events (never the source of truth: a
restarted operator rebuilds all of it from the initial listings of its watches)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .kube import Kube
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


@dataclass
class Runtime:
    settings: Settings
    kube: Kube
    livestreams: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> object
    children: dict[IndexKey, ChildViews] = field(default_factory=dict)
    streams: dict[str, StreamState] = field(default_factory=dict)
    _poll_slots: asyncio.Semaphore | None = None

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
