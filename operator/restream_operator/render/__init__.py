"""Pure functions from a LiveStream to the objects that make it real.

``render_children`` is the only entry point: the reconcile path applies what it returns,
``restream-operator render`` prints it. Same input, same output, byte for byte.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from .. import models, naming
from ..settings import Settings
from . import encoder, ingest, netpol, relay
from .common import Obj, Owner, metadata

__all__ = ["Children", "Owner", "generated_secret", "render_children"]

GENERATED_KEY = "streamKey"
PLAY_TOKEN_KEY = "token"


@dataclass(frozen=True)
class Children:
    """What a LiveStream should own.

    `applied` is applied on every reconcile (server-side apply, fixed names).
    `generated` names Secrets holding random values: created once, never rewritten.
    `relays` maps each enabled restream's name to its relay Deployment's name.
    `encoders` maps each rendition in use to its encoder Deployment's name.
    """

    applied: list[Obj] = field(default_factory=list)
    generated: dict[str, str] = field(default_factory=dict)  # secret name -> data key
    relays: dict[str, str] = field(default_factory=dict)
    encoders: dict[str, str] = field(default_factory=dict)


def generated_secret(owner: Owner, name: str, data_key: str, value: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(owner, name, naming.labels(owner.name, naming.COMPONENT_KEYS)),
        "type": "Opaque",
        "data": {data_key: base64.b64encode(value.encode()).decode()},
    }


def ingest_key_ref(owner: Owner) -> tuple[str, str]:
    ref = owner.spec.stream_key_secret_ref
    if ref is not None:
        return ref.name, ref.key
    return naming.generated_key_secret(owner.name), GENERATED_KEY


def render_children(owner: Owner, settings: Settings) -> Children:
    spec = owner.spec
    key_secret = ingest_key_ref(owner)
    play_secret = naming.play_token_secret(owner.name)
    generated = {play_secret: PLAY_TOKEN_KEY}
    if spec.stream_key_secret_ref is None:
        generated[key_secret[0]] = key_secret[1]

    config = ingest.config_map(owner, hls=spec.playback.hls, tls=spec.ingest.serves("RTMPS"))
    applied: list[Obj] = [
        *netpol.network_policies(owner, settings),  # first: no pod runs unconfined
        config,
        ingest.deployment(owner, settings, config, key_secret, play_secret),
        ingest.service(owner),
        ingest.internal_service(owner),
    ]
    relays: dict[str, str] = {}
    for restream in spec.restreams:
        if not restream.enabled:
            continue
        secret = relay.inline_key_secret(owner, restream)
        if secret is not None:
            applied.append(secret)
        deployment = relay.deployment(owner, restream, settings, play_secret)
        applied.append(deployment)
        relays[restream.name] = deployment["metadata"]["name"]
    encoders: dict[str, str] = {}
    for rendition in encoder.in_use(spec):
        deployment = encoder.deployment(owner, rendition, settings, play_secret)
        applied.append(deployment)
        encoders[rendition.name] = deployment["metadata"]["name"]
    return Children(applied=applied, generated=generated, relays=relays, encoders=encoders)


def owner_from_object(obj: Obj) -> Owner:
    """An Owner from a LiveStream as the API (or a YAML file) gives it."""
    meta = obj.get("metadata") or {}
    return Owner(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace") or "default"),
        uid=str(meta.get("uid") or ""),
        spec=models.LiveStreamSpec.model_validate(obj.get("spec") or {}),
    )
