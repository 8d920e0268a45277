"""Referenced Secrets: the question a review asks about each, and the warnings it gives.

A Secret that does not exist yet, or lacks the key, is no refusal (it may be created
right after the LiveStream, as GitOps tools do), but it is worth a warning: the relay or
the ingest waits for it. The question is one record, :class:`SecretRef`, so that a
namespace, a name and a key can never be passed in each other's place.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

from .check import Check
from .text import quote

# What one review may spend reading Secrets: past it, no read starts (unknown: no warning).
SECRETS_BUDGET_SECONDS = 2.0


@dataclass(frozen=True)
class SecretRef:
    """One key of one Secret, in one namespace."""

    namespace: str
    name: str
    key: str


class SecretState(enum.Enum):
    PRESENT = "present"
    MISSING = "missing"  # no Secret of that name
    NO_KEY = "no key"  # the Secret exists, without that key


# The answer about one reference; None: unknown (no warning rather than a wrong one).
SecretLookup = Callable[[SecretRef], SecretState | None]


def check_secrets(
    check: Check, lookup: SecretLookup, budget: float = SECRETS_BUDGET_SECONDS
) -> None:
    deadline = time.monotonic() + budget
    for used in check.secrets:
        if time.monotonic() >= deadline:
            return
        ref = SecretRef(namespace=check.namespace, name=used.name, key=used.key)
        try:
            state = lookup(ref)
        except Exception:  # unknown: the webhook must not fail on it
            state = None
        where = f"in namespace {quote(ref.namespace)}: {used.waiting} will wait for it"
        if state is SecretState.MISSING:
            check.warn(f"{used.field}.name", f"Secret {quote(ref.name)} does not exist yet {where}")
        elif state is SecretState.NO_KEY:
            check.warn(
                f"{used.field}.key",
                f"Secret {quote(ref.name)} has no key {quote(ref.key)} yet {where}",
            )
