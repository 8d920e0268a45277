"""Names and labels of a LiveStream's children: fixed, so that applies are idempotent.

Restream names are free text ("Youtube", "My Twitch", "Ünïcode 🎥"); objects need DNS
labels. Within a LiveStream, a destination is told apart by its slug: readable text plus
a short hash of the case-folded name (names that differ only in case, which admission
refuses anyway, share it). Across LiveStreams of a namespace, a relay's objects are
named from the pair (LiveStream, restream): readable text for people plus a 48-bit hash
of an unambiguous encoding of the pair, so that LiveStream "p" with restream
"x-relay-y" and LiveStream "p-relay-x" with restream "y" get different names.
Reconcile still refuses to apply over an object another LiveStream owns (NameConflict).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MANAGED_BY = "restream-operator"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_LIVESTREAM = "restream.dev/livestream"
LABEL_RESTREAM = "restream.dev/restream"
ANNOTATION_RESTREAM_NAME = "restream.dev/restream-name"
LABEL_RENDITION = "restream.dev/rendition"
ANNOTATION_RENDITION_NAME = "restream.dev/rendition-name"

COMPONENT_INGEST = "ingest"
COMPONENT_RELAY = "relay"
COMPONENT_KEYS = "stream-key"
COMPONENT_ON_AIR = "on-air"
COMPONENT_ENCODER = "encoder"
# Pods of a rendition's encoder are grouped under this prefix and the rendition's name
# (views.pod_group): ':' is in no restream slug, so no destination shares the group.
ENCODER_GROUP_PREFIX = "rendition:"

_SLUG_MAX = 20
_HASH_LEN = 6
_PAIR_HASH_LEN = 12  # hex digits: 48 bits


def restream_slug(name: str) -> str:
    """DNS-label-safe, stable id of a restream name, e.g. "My Twitch" -> "my-twitch-3f2a9c"."""
    slug = _text(name)
    digest = hashlib.sha256(name.casefold().encode()).hexdigest()[:_HASH_LEN]
    return f"{slug}-{digest}" if slug else f"r-{digest}"


def ingest_name(livestream: str) -> str:
    return f"{livestream}-ingest"


def ingest_internal_name(livestream: str) -> str:
    """The ClusterIP-only Service relays use (RTMP play and the agent's port)."""
    return f"{ingest_name(livestream)}-internal"


def relays_network_policy(livestream: str) -> str:
    """The NetworkPolicy over every relay pod of a LiveStream (the ingest's is named like
    its other objects): the suffixes differ, so no two LiveStreams' policies collide."""
    return f"{livestream}-relays"


def on_air_budget(livestream: str) -> str:
    """The PodDisruptionBudget that exists while a LiveStream broadcasts."""
    return f"{livestream}-on-air"


def generated_key_secret(livestream: str) -> str:
    return f"{livestream}-stream-key"


def play_token_secret(livestream: str) -> str:
    return f"{livestream}-play-token"


def _text(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:_SLUG_MAX].strip("-")


def relay_name(livestream: str, restream: str) -> str:
    # Length-prefixed, so no two pairs encode alike whatever their characters.
    pair = f"{len(livestream)}:{livestream}:{restream.casefold()}"
    digest = hashlib.sha256(pair.encode()).hexdigest()[:_PAIR_HASH_LEN]
    text = _text(restream)
    return f"{livestream}-relay-{text}-{digest}" if text else f"{livestream}-relay-{digest}"


def encoder_name(livestream: str, rendition: str) -> str:
    """The Deployment of a rendition's encoder. Rendition names are DNS labels of at most
    20 characters; the pair's hash tells LiveStream "a" with rendition "b-encoder-c"
    from LiveStream "a-encoder-b" with rendition "c"."""
    pair = f"{len(livestream)}:{livestream}:{rendition}"
    digest = hashlib.sha256(pair.encode()).hexdigest()[:_HASH_LEN]
    return f"{livestream}-encoder-{rendition}-{digest}"


def encoders_network_policy(livestream: str) -> str:
    return f"{livestream}-encoders"


def rendition_stream(rendition: str) -> str:
    """The stream an encoder publishes its rendition under, on the ingest (the main one
    is contract.STREAM_NAME): what the relays of its destinations play."""
    return f"rendition-{rendition}"


def encoder_group(rendition: str) -> str:
    return f"{ENCODER_GROUP_PREFIX}{rendition}"


def inline_key_secret(livestream: str, restream: str) -> str:
    return f"{relay_name(livestream, restream)}-key"


def encoder_labels(livestream: str, rendition: str) -> dict[str, str]:
    return {**labels(livestream, COMPONENT_ENCODER), LABEL_RENDITION: rendition}


def encoder_selector(livestream: str, rendition: str) -> dict[str, str]:
    return {**selector(livestream, COMPONENT_ENCODER), LABEL_RENDITION: rendition}


def labels(livestream: str, component: str, restream: str | None = None) -> dict[str, str]:
    out = {
        LABEL_NAME: "restream",
        LABEL_INSTANCE: livestream,
        LABEL_COMPONENT: component,
        LABEL_PART_OF: "restream-operator",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_LIVESTREAM: livestream,
    }
    if restream is not None:
        out[LABEL_RESTREAM] = restream_slug(restream)
    return out


def selector(livestream: str, component: str, restream: str | None = None) -> dict[str, str]:
    """The immutable subset of labels a Deployment selects its pods by."""
    out = {LABEL_LIVESTREAM: livestream, LABEL_COMPONENT: component}
    if restream is not None:
        out[LABEL_RESTREAM] = restream_slug(restream)
    return out
