"""Events on a LiveStream: one poster, kopf's, under the operator's name.

kopf queues each Event and posts it from its own task with retries; queueing is safe
from the event loop and from worker threads alike, so the reconcile path (threads) and
the status loop (the loop) both post here, and every Event on a LiveStream has one
reporting component (runner.py sets it).
"""

from __future__ import annotations

import logging
from typing import Any, Literal, cast

import kopf

log = logging.getLogger(__name__)


def post(
    livestream: dict[str, Any], type: Literal["Normal", "Warning"], reason: str, message: str
) -> None:
    # The API server refuses Event messages over 1 KiB; say the start of a long one.
    body = kopf.Body(cast(kopf.RawBody, livestream))
    try:
        kopf.event(body, type=type, reason=reason, message=message[:1024])
    except LookupError:
        # No operator runs here (a tool or a test driving the reconcile path): no poster.
        log.info(f"{type} {reason} (no operator to post it): {message}")
