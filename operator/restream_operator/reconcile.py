"""The reconcile path: make a LiveStream's children match its spec. The only one.

:func:`reconcile` is what every caller uses: kopf's create/update/resume handler and the
status loop's repair of missing children. It holds the LiveStream's lock (kopf runs
handlers in worker threads, the repair runs in another: they never apply the same
children at once), works from the newest object the operator has seen, and does the same
bookkeeping whoever called it: the reconciled generation, the error, the missing
Secrets, and the Events.

:func:`apply_children` does the work. It renders the children (pure), creates the
random Secrets once, server-side applies everything else with fixed names (a no-op on
the server when nothing changed), and deletes the relays and inline-key Secrets of
destinations that were removed or disabled. Each destination's objects depend only on
that destination, so the other destinations' objects are never rewritten.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from . import naming
from .kube import Kube, Obj
from .render import Owner, generated_secret, owner_from_object, render_children
from .runtime import Runtime
from .secretrefs import MissingSecret, missing_secrets
from .settings import Settings

log = logging.getLogger(__name__)

# Objects reconcile may delete: per-destination ones, never the ingest.
_PRUNABLE = {
    "Deployment": naming.COMPONENT_RELAY,
    "Secret": naming.COMPONENT_KEYS,
}


@dataclass
class Outcome:
    applied: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    missing_secrets: list[MissingSecret] = field(default_factory=list)


def new_secret_value() -> str:
    """192 random bits, URL-safe: it becomes part of an RTMP URL."""
    return secrets.token_urlsafe(24)


def _ref(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _owned_by(obj: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences", []))


class TooManyRestreams(ValueError):
    """The spec asks for more destinations than the operator allows: retrying cannot
    help until the spec (or the operator's limit) changes."""


def check_limits(owner: Owner, settings: Settings) -> None:
    """The operator's limit holds even for objects stored while the webhook was down."""
    count = len(owner.spec.restreams)
    if count > settings.max_restreams:
        raise TooManyRestreams(
            f"spec.restreams has {count} destinations; this operator allows at most "
            f"{settings.max_restreams} (raise RESTREAM_MAX_RESTREAMS, up to 50, to allow more)"
        )


def apply_children(owner: Owner, settings: Settings, kube: Kube) -> Outcome:
    check_limits(owner, settings)
    outcome = Outcome()
    children = render_children(owner, settings)

    for name, data_key in children.generated.items():
        secret = generated_secret(owner, name, data_key, new_secret_value())
        if kube.create_if_absent(secret):
            outcome.created.append(_ref(secret))

    for obj in children.applied:
        kube.apply(obj)
        outcome.applied.append(_ref(obj))

    desired = {_ref(obj) for obj in children.applied} | {
        f"Secret/{name}" for name in children.generated
    }
    for kind, component in _PRUNABLE.items():
        selector = {
            naming.LABEL_LIVESTREAM: owner.name,
            naming.LABEL_COMPONENT: component,
            naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
        }
        for obj in kube.list(kind, owner.namespace, selector):
            ref = f"{kind}/{obj['metadata']['name']}"  # list items carry no kind
            if ref in desired or not _owned_by(obj, owner.uid):
                continue
            if kind == "Secret" and naming.LABEL_RESTREAM not in obj["metadata"].get("labels", {}):
                continue  # the generated ingest key and play token stay for the stream's life
            if kube.delete(kind, owner.namespace, obj["metadata"]["name"]):
                outcome.deleted.append(ref)

    outcome.missing_secrets = find_missing_secrets(owner, kube)
    return outcome


def find_missing_secrets(owner: Owner, kube: Kube) -> list[MissingSecret]:
    return missing_secrets(owner.spec, lambda name: kube.get("Secret", owner.namespace, name))


def reconcile(runtime: Runtime, obj: dict[str, Any], cause: str) -> Outcome | None:
    """Brings one LiveStream's children to its spec; None when it is being deleted.

    ``obj``: the LiveStream as the caller saw it (the newest one seen is used).
    ``cause``: why, for the log (create, update, resume, repair). Raises what applying
    raised, after recording it (TooManyRestreams: retrying will not help).
    """
    uid = obj["metadata"]["uid"]
    with runtime.lock(uid):
        obj = runtime.newest(obj)
        if obj["metadata"].get("deletionTimestamp"):
            return None
        owner = owner_from_object(obj)
        where = f"{owner.namespace}/{owner.name}"
        state = runtime.stream(uid)
        generation = int(obj["metadata"].get("generation") or 0)
        try:
            outcome = apply_children(owner, runtime.settings, runtime.kube)
        except TooManyRestreams as exc:
            state.reconcile_error = str(exc)
            runtime.events.post(obj, "Warning", "TooManyRestreams", message=str(exc))
            raise
        except Exception as exc:
            state.reconcile_error = f"reconcile failed: {exc}"
            log.error(f"{where}: {cause}: {state.reconcile_error}")
            raise
        state.reconcile_error = None
        state.reconciled_generation = generation
        state.reconciled_at = time.monotonic()
        state.missing_secrets = tuple(outcome.missing_secrets)
        for ref in outcome.created:
            log.info(f"{where}: created {ref}")
        for ref in outcome.deleted:
            runtime.events.post(obj, "Normal", "Deleted", message=f"deleted {ref}")
        if outcome.missing_secrets:
            message = "; ".join(map(str, outcome.missing_secrets))
            runtime.events.post(obj, "Warning", "SecretMissing", message=message)
        log.info(
            f"{where}: {cause}: reconciled generation {generation}: "
            f"{len(outcome.applied)} applied, {len(outcome.deleted)} deleted"
        )
        return outcome
