"""What one review finds as it goes: problems, warnings, hosts to resolve, Secrets to ask.

The rules append to a :class:`Check`; the review resolves the hosts and asks about the
Secrets it collected once the walk is done (all at once, within one budget). A check
keeps a bounded number of findings, so that a hostile object cannot make it grow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import models
from ..settings import Settings

# Past these, a request is refused anyway: the rest is not worth the webhook's time.
MAX_ITEMS = 2 * models.MAX_RESTREAMS_CEILING
_MAX_KEPT = 1000


@dataclass(frozen=True)
class Problem:
    """One refusal (or warning): the field, and a message saying what is wrong and the fix."""

    field: str
    message: str
    # Which rule, where ratcheting an UPDATE needs more than equality of messages.
    rule: str = ""

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class ReferencedSecret:
    """A Secret key the object refers to, where, and what waits for it."""

    field: str
    name: str
    key: str
    waiting: str  # "the relay", "the ingest"


@dataclass
class Check:
    settings: Settings
    namespace: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    # host to resolve -> fields whose serverUrl names it
    hosts: dict[str, list[str]] = field(default_factory=dict)
    secrets: list[ReferencedSecret] = field(default_factory=list)
    # field -> what its stored problems are about (a serverUrl's scheme://host:port): on
    # UPDATE, a problem is only carried over while this stays the same.
    subjects: dict[str, str] = field(default_factory=dict)
    restream_count: int = 0
    dropped: int = 0  # problems beyond _MAX_KEPT
    _seen: set[tuple[str, str, bool]] = field(default_factory=set)

    def problem(self, path: str, message: str, rule: str = "") -> None:
        if (path, message, True) not in self._seen:
            self._seen.add((path, message, True))
            if len(self.problems) < _MAX_KEPT:
                self.problems.append(Problem(path, message, rule))
            else:
                self.dropped += 1

    def warn(self, path: str, message: str) -> None:
        if (path, message, False) not in self._seen and len(self.warnings) < _MAX_KEPT:
            self._seen.add((path, message, False))
            self.warnings.append(Problem(path, message))

    @property
    def warnings_full(self) -> bool:
        return len(self.warnings) >= _MAX_KEPT
