"""Whether the requester may read the Secrets their LiveStream names.

The operator reads a LiveStream's Secrets with its own rights and sends the keys to the
destinations the LiveStream names: without this check, anyone allowed to write a
LiveStream could send any Secret of the namespace to a server of their choice (a
confused deputy). So every Secret the spec names must be one its author may ``get``,
asked of the API server itself (a SubjectAccessReview with the request's user, groups,
uid and extra), so that RBAC, and any other authorizer the cluster runs, stays the one
authority.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .check import Check
from .text import quote


@dataclass(frozen=True)
class Requester:
    """Who sent an admission request (its ``userInfo``), hashable for caching."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def from_user_info(cls, info: Mapping[str, Any]) -> Requester:
        extra = info.get("extra") or {}
        return cls(
            username=str(info.get("username") or ""),
            uid=str(info.get("uid") or ""),
            groups=tuple(str(g) for g in info.get("groups") or ()),
            extra=tuple(sorted((str(k), tuple(map(str, v or ()))) for k, v in extra.items())),
        )


class SecretAccess(Protocol):
    """Answers, for one requester, whether they may get one Secret (None: unknown)."""

    @property
    def requester(self) -> Requester: ...

    def may_get(self, *, namespace: str, name: str) -> bool | None: ...


def check_access(check: Check, access: SecretAccess) -> None:
    """A problem for every named Secret the requester may not read; also when the API
    server could not say (fail closed: the key would otherwise leave with the relay)."""
    who = quote(access.requester.username or "(unknown user)")
    asked: dict[str, bool | None] = {}
    for used in check.secrets:
        if used.name not in asked:
            try:
                asked[used.name] = access.may_get(namespace=check.namespace, name=used.name)
            except Exception:
                asked[used.name] = None
        allowed = asked[used.name]
        secret = f"Secret {quote(used.name)} in namespace {quote(check.namespace)}"
        if allowed is False:
            check.problem(
                f"{used.field}.name",
                f"{who} may not get {secret}, and a LiveStream may only name Secrets its "
                f"author can read (its key would leave with {used.waiting}): ask for "
                f"'get' on secrets/{used.name}, or name a Secret of your own",
                rule="secret.access",
            )
        elif allowed is None:
            check.problem(
                f"{used.field}.name",
                f"could not check whether {who} may get {secret} (the API server did not "
                "answer): try again",
                rule="secret.access",
            )
