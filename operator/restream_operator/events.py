"""Events on a LiveStream: one poster, kopf's, under the operator's name.

kopf queues each Event and posts it from its own task, with retries; queueing is safe
from the event loop and from worker threads alike. Its queue is reachable only from
the context kopf gives its handlers, and the status loop runs in none: so the poster
keeps a copy of the first handler context it sees (any handler's will do: the queue is
one for the whole operator) and posts through it from elsewhere. Every Event on a
LiveStream thus has one source and one reporting component (runner.py sets it).
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any, Literal, cast

import kopf

log = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]


class Poster:
    def __init__(self) -> None:
        self._context: contextvars.Context | None = None

    def capture(self) -> None:
        """Called from inside a kopf handler: remembers its context, once."""
        if self._context is None:
            self._context = contextvars.copy_context()

    def post(self, livestream: dict[str, Any], type: EventType, reason: str, message: str) -> None:
        body = kopf.Body(cast(kopf.RawBody, livestream))
        # The API server refuses Event messages over 1 KiB; say the start of a long one.
        message = message[:1024]
        try:
            kopf.event(body, type=type, reason=reason, message=message)
            return
        except LookupError:
            pass  # not inside a handler
        if self._context is None:
            # No operator runs here (a tool or a test driving the reconcile path).
            log.info(f"{type} {reason} (no operator to post it): {message}")
            return
        # A copy: two threads may post at once, and a context is entered by one at a time.
        self._context.copy().run(kopf.event, body, type=type, reason=reason, message=message)
