"""The reconcile path: make a LiveStream's children match its spec. The only one.

Create, update, resume and self-repair all call ``reconcile``. It renders the children
(pure), creates the random Secrets once, server-side applies everything else with fixed
names (a no-op on the server when nothing changed), and deletes the relays and inline-key
Secrets of destinations that were removed or disabled. Each destination's objects depend
only on that destination, so the other destinations' objects are never rewritten.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from . import naming
from .kube import Kube, Obj
from .render import Owner, generated_secret, render_children
from .settings import Settings

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
    missing_secrets: list[str] = field(default_factory=list)


def new_secret_value() -> str:
    """192 random bits, URL-safe: it becomes part of an RTMP URL."""
    return secrets.token_urlsafe(24)


def _ref(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _owned_by(obj: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences", []))


class TooManyRestreams(ValueError):
    pass


def check_limits(owner: Owner, settings: Settings) -> None:
    """The operator's limit holds even for objects stored while the webhook was down."""
    assert owner.spec is not None
    count = len(owner.spec.restreams)
    if count > settings.max_restreams:
        raise TooManyRestreams(
            f"spec.restreams has {count} destinations; this operator allows at most "
            f"{settings.max_restreams} (raise RESTREAM_MAX_RESTREAMS, up to 50, to allow more)"
        )


def reconcile(owner: Owner, settings: Settings, kube: Kube) -> Outcome:
    check_limits(owner, settings)
    assert owner.spec is not None
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

    outcome.missing_secrets = missing_secrets(owner, kube)
    return outcome


def referenced_secrets(owner: Owner) -> list[tuple[str, str, str]]:
    """(secret, key, who refers to it) for every Secret a user named in the spec."""
    assert owner.spec is not None
    refs = []
    if owner.spec.stream_key_secret_ref is not None:
        ref = owner.spec.stream_key_secret_ref
        refs.append((ref.name, ref.key, "spec.streamKeySecretRef"))
    for r in owner.spec.restreams:
        if r.enabled and r.stream_key_secret_ref is not None:
            ref = r.stream_key_secret_ref
            refs.append((ref.name, ref.key, f"restream {r.name!r}"))
    return refs


def missing_secrets(owner: Owner, kube: Kube) -> list[str]:
    """Human-readable list of referenced Secret keys that do not exist (yet)."""
    missing = []
    for name, key, who in referenced_secrets(owner):
        secret = kube.get("Secret", owner.namespace, name)
        if secret is None:
            missing.append(f"Secret {name!r} (for {who}) does not exist")
        elif key not in (secret.get("data") or {}):
            missing.append(f"Secret {name!r} has no key {key!r} (for {who})")
    return missing
