"""The entry point: :func:`review` runs every rule on one LiveStream and never raises.

Order: metadata, then the walk over ``spec`` (schema and rules), then the operator's own
parser as the last word; then DNS for the hosts that passed (all at once, within one
budget) and the referenced Secrets; on UPDATE, the ratchet, which lets a stored object
keep a problem it already has but never gain one. Whatever goes wrong inside becomes a
refusal that asks for a bug report, never an exception in the webhook.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .. import models
from ..settings import Settings
from . import schema
from .access import SecretAccess, check_access
from .addresses import PRIVATE_FIX, address_problem
from .check import Check, Problem
from .fields import NAME_MISSING, check_metadata_name, check_namespace
from .resolver import RESOLVE_TIMEOUT, Lookup, Resolver
from .rules import COUNT_RULE, SPEC_RULES
from .secretrefs import SecretLookup, check_secrets
from .text import field, kind, quote

MAX_PROBLEMS = 50


@dataclass(frozen=True)
class Review:
    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.problems

    def message(self) -> str:
        """The refusal as one text, for an AdmissionReview's status message."""
        if len(self.problems) == 1:
            return str(self.problems[0])
        lines = [f"{len(self.problems)} problems:"] + [f"- {p}" for p in self.problems]
        return "\n".join(lines)


def without_nulls(value: Any) -> Any:
    """What the API server stores: null fields dropped (and then defaulted)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def spec_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """The field and message of each error the models found in a spec."""
    out = []
    for error in exc.errors():
        where = "spec"
        for part in error["loc"]:
            # A key of the file's may hold anything: field() quotes what is odd.
            where = f"{where}[{part}]" if isinstance(part, int) else field(where, str(part))
        out.append((where, str(error["msg"])))
    return out


def _check_metadata(meta: object, check: Check) -> None:
    if meta is None:
        check.problem("metadata", "is missing: name the LiveStream, e.g. metadata: {name: launch}")
    elif not isinstance(meta, dict):
        check.problem("metadata", f"must be a mapping, not {kind(meta)}")
    else:
        name, generate = meta.get("name"), meta.get("generateName")
        if isinstance(name, str):
            for message in check_metadata_name(name):
                check.problem("metadata.name", message)
        elif name is not None:
            check.problem("metadata.name", f"must be a string, not {kind(name)}")
        elif isinstance(generate, str):
            # The API server appends 5 characters to generateName.
            for message in check_metadata_name(generate + "x" * 5):
                check.problem("metadata.generateName", message.replace("x" * 5, ""))
        else:
            check.problem("metadata.name", NAME_MISSING)
        written = meta.get("namespace")
        if isinstance(written, str):
            for message in check_namespace(written):
                check.problem("metadata.namespace", message)
        elif written is not None:
            check.problem("metadata.namespace", f"must be a string, not {kind(written)}")


def _check_object(obj: object, settings: Settings, namespace: str | None) -> Check:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    ns = namespace or (meta.get("namespace") if isinstance(meta, dict) else None)
    check = Check(settings, ns if isinstance(ns, str) and ns else "default")
    if not isinstance(obj, dict):
        check.problem("(object)", f"a LiveStream must be a mapping, not {kind(obj)}")
        return check
    _check_metadata(meta, check)
    spec = obj.get("spec")
    if spec is None:
        check.problem("spec", "is missing: a LiveStream needs a spec (spec: {} is enough)")
        return check
    schema.walk(spec, schema.spec_schema(), "spec", "", check, SPEC_RULES)
    if not check.problems:
        # The last word is the operator's own parser: what it cannot read is refused,
        # whatever the rules above missed.
        try:
            models.LiveStreamSpec.model_validate(without_nulls(spec))
        except ValidationError as exc:
            for where, message in spec_errors(exc):
                check.problem(where, message)
    return check


def _lookups(hosts: Sequence[str], resolver: Resolver, timeout: float) -> dict[str, Lookup]:
    hosts = list(hosts)[: models.MAX_RESTREAMS_CEILING]
    try:
        answers = resolver(hosts, timeout)
    except Exception as exc:  # a resolver's failure is a warning, never a crash
        answers = {h: Lookup(error=f"resolver failed: {type(exc).__name__}") for h in hosts}
    if not isinstance(answers, Mapping):
        return {}
    return {h: a for h, a in answers.items() if isinstance(h, str) and isinstance(a, Lookup)}


def _apply_lookups(check: Check, answers: Mapping[str, Lookup], *, warn: bool = True) -> None:
    for host, paths in check.hosts.items():
        lookup = answers.get(host)
        if lookup is None or not lookup.addresses:
            reason = lookup.error if lookup is not None and lookup.error else "no answer"
            for path in paths if warn else ():
                check.warn(
                    path,
                    f"could not resolve {quote(host)} ({quote(reason, 80)[1:-1]}): check the "
                    "host name (whether its address is public was not checked)",
                )
            continue
        for address in lookup.addresses:
            try:
                ip = ipaddress.ip_address(str(address).split("%", 1)[0])
            except ValueError:
                continue
            what = address_problem(ip)
            if what is not None:
                for path in paths:
                    check.problem(
                        path, f"host {quote(host)} resolves to {ip}, {what}: {PRIVATE_FIX}"
                    )
                break


def _ratchet(new: Check, old: Check) -> None:
    """On UPDATE, a problem the stored object already has is a warning, not a refusal.

    Otherwise a stored object that a newer rule (or a lower limit, or a changed DNS
    answer) finds invalid could not be touched at all: not by kopf's own annotation and
    finalizer patches, not even by a change that fixes part of it. A change that adds a
    problem is still refused, as the API server's own CEL ratcheting does.
    """
    stored = {(p.field, p.message) for p in old.problems}
    kept: list[Problem] = []
    for p in new.problems:
        # Only where the field still points at the same place: a stored private host
        # may keep its problem, not move to another port or scheme with it.
        carried = (p.field, p.message) in stored and new.subjects.get(p.field) == (
            old.subjects.get(p.field)
        )
        if p.rule == COUNT_RULE:
            carried = any(q.rule == p.rule for q in old.problems) and (
                new.restream_count <= old.restream_count
            )
        if carried:
            new.warn(p.field, f"{p.message} (already so in the stored object: fix it soon)")
        else:
            kept.append(p)
    new.problems = kept


def review(
    obj: object,
    settings: Settings,
    old: object | None = None,
    *,
    resolver: Resolver | None,
    secrets: SecretLookup | None = None,
    access: SecretAccess | None = None,
    namespace: str | None = None,
    timeout: float = RESOLVE_TIMEOUT,
) -> Review:
    """Every rule on one LiveStream (as the API or a YAML file gives it). Never raises.

    ``old``: the stored object, on UPDATE. ``resolver``: what resolves destination hosts
    (a :class:`.DnsResolver`); None skips DNS (the name rules still apply), and must be
    said. ``secrets``: asked about each referenced Secret key; None (or an answer of
    None) gives no warning. ``access``: whether the requester may read each Secret the
    spec names (None skips it: no requester, as in ``validate``); asked on CREATE and
    whenever the spec changes, never ratcheted. ``namespace``: the request's, when the
    object has none yet.
    Blocks for at most ``timeout`` seconds of DNS and a bounded time of Secret reads.
    """
    try:
        check = _check_object(obj, settings, namespace)
        spec_unchanged = (
            old is not None
            and isinstance(obj, dict)
            and isinstance(old, dict)
            and obj.get("spec") == old.get("spec")
        )
        # A metadata-only UPDATE (kopf's own patches) changes no destination: skip DNS.
        answers: dict[str, Lookup] = {}
        if resolver is not None and check.hosts and not spec_unchanged:
            answers = _lookups(list(check.hosts), resolver, timeout)
            _apply_lookups(check, answers)
        if secrets is not None:
            check_secrets(check, secrets)
        if old is not None:
            previous = _check_object(old, settings, namespace)
            # The stored object's DNS problems only matter where they equal the new
            # object's, so the answers already obtained are all it needs.
            _apply_lookups(previous, answers, warn=False)
            _ratchet(check, previous)
        if access is not None and not spec_unchanged:
            # After the ratchet: a Secret the stored object already named does not become
            # the requester's to redirect because someone else named it first.
            check_access(check, access)
        problems, warnings, dropped = check.problems, check.warnings, check.dropped
    except Exception as exc:  # a bug here must refuse, not crash the webhook
        problems = [
            Problem("(object)", f"could not be checked ({type(exc).__name__}): report this bug")
        ]
        warnings, dropped = [], 0
    if len(problems) > MAX_PROBLEMS or dropped:
        more = len(problems) + dropped - MAX_PROBLEMS
        problems = [*problems[:MAX_PROBLEMS], Problem("(object)", f"and {more} more problems")]
    return Review(problems=tuple(problems), warnings=tuple(warnings[:MAX_PROBLEMS]))
