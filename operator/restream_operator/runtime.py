"""What the operator keeps in memory between handler calls (never the source of truth:
a restarted operator rebuilds all of it from the API on resume)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .kube import Kube
from .settings import Settings


@dataclass
class StreamState:
    """Per LiveStream (by uid): the last reconcile's outcome."""

    reconciled_generation: int | None = None
    reconciled_at: float = 0.0
    reconcile_error: str | None = None
    missing_secrets: tuple[str, ...] = ()


@dataclass
class Runtime:
    settings: Settings
    kube: Kube
    streams: dict[str, StreamState] = field(default_factory=dict)
    _poll_slots: asyncio.Semaphore | None = None

    def stream(self, uid: str) -> StreamState:
        return self.streams.setdefault(uid, StreamState())

    def forget(self, uid: str) -> None:
        self.streams.pop(uid, None)

    @property
    def poll_slots(self) -> asyncio.Semaphore:
        # Created lazily, inside the operator's event loop.
        if self._poll_slots is None:
            self._poll_slots = asyncio.Semaphore(self.settings.agent_poll_concurrency)
        return self._poll_slots
