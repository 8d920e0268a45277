"""Which rule checks which model field: the table the schema walk runs.

Each rule is keyed by the model field (or the model) it checks, and placed at every
path where that field appears below ``spec`` (:func:`.schema.paths_of`): the ingest's
and each destination's ``streamKeySecretRef`` share one rule for Secret names. A key
that names no field of the models fails at import; a unit test checks that every path
is a node of the generated CRD schema.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import TypeVar

from .. import models, naming
from ..render.nginx import TLS_CERT
from .check import MAX_ITEMS, Check, ReferencedSecret
from .fields import (
    check_qualified_name,
    check_quantity,
    check_restream_name,
    check_secret_key,
    check_secret_name,
    check_stream_key,
)
from .schema import FieldKey, NodeRules, Rule, alias, paths_of
from .text import field, item
from .urls import EXAMPLE_URL, check_server_url

_NAME = alias(models.Restream, "name")
_STREAM_KEY = alias(models.Restream, "stream_key")
_KEY_REF = alias(models.Restream, "stream_key_secret_ref")
_REF_NAME = alias(models.SecretKeySelector, "name")
_REF_KEY = alias(models.SecretKeySelector, "key")
_SERVER_URL = alias(models.Restream, "server_url")
_TLS = alias(models.Restream, "tls")
_SRT = alias(models.Restream, "srt")
_CA_REF = alias(models.DestinationTLS, "ca_secret_ref")
_INSECURE = alias(models.DestinationTLS, "insecure_skip_verify")
_PROTOCOLS = alias(models.IngestSpec, "protocols")
_INGEST_TLS = alias(models.IngestSpec, "tls")
_INGEST_SRT = alias(models.IngestSpec, "srt")
_MIN_DELAY = alias(models.ReconnectSpec, "min_delay_seconds")
_MAX_DELAY = alias(models.ReconnectSpec, "max_delay_seconds")
_RESTREAMS = alias(models.LiveStreamSpec, "restreams")
_RENDITIONS = alias(models.LiveStreamSpec, "renditions")
_RENDITION = alias(models.Restream, "rendition")
_RENDITION_NAME = alias(models.Rendition, "name")
_ENABLED = alias(models.Restream, "enabled")
_BITRATE = alias(models.RenditionVideo, "bitrate_kbps")
_MAX_BITRATE = alias(models.RenditionVideo, "max_bitrate_kbps")

# Platforms issue keys of 16 characters and more (YouTube's are 24).
SHORT_KEY = 8
# The rule's id for ratcheting: an UPDATE may keep too many destinations, never add one.
COUNT_RULE = "restreams.count"


def _restreams(value: object, path: str, check: Check) -> None:
    assert isinstance(value, list)
    check.restream_count = len(value)
    limit = check.settings.max_restreams
    if len(value) > limit:
        check.problem(
            path,
            f"has {len(value)} destinations, more than this operator allows ({limit}): "
            "remove some, or raise the operator's limit (environment variable "
            "RESTREAM_MAX_RESTREAMS, Helm value operator.maxRestreams; at most "
            f"{models.MAX_RESTREAMS_CEILING})",
            rule=COUNT_RULE,
        )
    # Names must be unique as written, ignoring case, after Unicode compatibility
    # folding (look-alikes) and as object names (slug + hash): each is a stricter check.
    seen: list[dict[str, tuple[int, str]]] = [{}, {}, {}, {}]
    for index, entry in enumerate(value[:MAX_ITEMS]):
        if not isinstance(entry, dict):
            continue
        name = entry.get(_NAME)
        if not isinstance(name, str) or check_restream_name(name):
            continue
        folded = name.casefold()
        looks = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
        forms = (
            (name, "the same name as"),
            (folded, "the same name, ignoring case, as"),
            (looks, "a name that looks the same as"),
            (naming.restream_slug(name), "a name giving the same object names as"),
        )
        for table, (form, what) in zip(seen, forms, strict=True):
            if form in table:
                _, first_label = table[form]
                check.problem(
                    f"{item(path, index, entry)}.{_NAME}",
                    f"{what} {first_label}: names must be unique (they name the relay's "
                    "objects, and people tell destinations apart by them); rename one",
                )
                break
        else:
            label = item(path, index, entry)
            for table, (form, _) in zip(seen, forms, strict=True):
                table[form] = (index, label)


def _restream(value: object, path: str, check: Check) -> None:
    assert isinstance(value, dict)
    _scheme_options(value, path, check)
    inline = value.get(_STREAM_KEY) is not None
    ref = value.get(_KEY_REF) is not None
    if inline and ref:
        check.problem(
            path,
            f"sets both {_STREAM_KEY} and {_KEY_REF}: keep only {_KEY_REF} (the key "
            "belongs in a Secret)",
        )
    elif not inline and not ref:
        check.problem(
            path,
            f"sets neither {_STREAM_KEY} nor {_KEY_REF}: add {_KEY_REF}: "
            "{name: SECRET, key: KEY} naming the Secret that holds the destination's key",
        )
    elif inline:
        check.warn(
            f"{path}.{_STREAM_KEY}",
            f"the key is inline: store it in a Secret and use {_KEY_REF} instead "
            "(kubectl create secret generic NAME --from-literal=streamKey=...)",
        )


def _scheme_options(value: dict[object, object], path: str, check: Check) -> None:
    """tls belongs to rtmps:// destinations, srt to srt:// ones: elsewhere it would be
    silently ignored, and a user who set a CA would believe it is used."""
    url = value.get(_SERVER_URL)
    scheme = url.split("://", 1)[0] if isinstance(url, str) else ""
    if value.get(_TLS) is not None and scheme != "rtmps":
        check.problem(
            f"{path}.{_TLS}",
            f"{_TLS} applies to rtmps:// destinations only: use an rtmps:// {_SERVER_URL}, "
            f"or remove {_TLS}",
        )
    if value.get(_SRT) is not None and scheme != "srt":
        check.problem(
            f"{path}.{_SRT}",
            f"{_SRT} applies to srt:// destinations only: use an srt:// {_SERVER_URL}, "
            f"or remove {_SRT}",
        )


def _destination_tls(value: object, path: str, check: Check) -> None:
    assert isinstance(value, dict)
    if value.get(_INSECURE) is not True:
        return
    if value.get(_CA_REF) is not None:
        check.problem(
            path,
            f"set {_CA_REF} or {_INSECURE}: true, not both (without verification, the CA "
            "would not be used)",
        )
    else:
        check.warn(
            f"{path}.{_INSECURE}",
            "the destination's certificate and host name will not be verified: anyone on "
            "the network path can impersonate it and collect the stream key; for a "
            f"private CA, set {_TLS}.{_CA_REF} instead",
        )


def _ingest(value: object, path: str, check: Check) -> None:
    """protocols may narrow what encoders use, never to nothing (CEL has the same rule)."""
    assert isinstance(value, dict)
    listed = value.get(_PROTOCOLS)
    if not isinstance(listed, list) or not listed:
        return  # unset; an empty list is the schema's to refuse (minItems)
    served = {"RTMP": True, "RTMPS": _INGEST_TLS in value, "SRT": _INGEST_SRT in value}
    if not any(served.get(str(p), False) for p in listed):
        check.problem(
            f"{path}.{_PROTOCOLS}",
            f"lists only protocols the ingest does not serve ({', '.join(map(str, listed))}): "
            f"keep one way in for encoders: RTMP, RTMPS with {_INGEST_TLS} set, or SRT with "
            f"{_INGEST_SRT} set",
        )


def _restream_name(value: object, path: str, check: Check) -> None:
    for message in check_restream_name(str(value)):
        check.problem(path, message)


def _server_url(value: object, path: str, check: Check) -> None:
    result = check_server_url(str(value), check.settings)
    check.subjects[path] = result.destination
    for message in result.problems:
        check.problem(path, message)
    for message in result.warnings:
        check.warn(path, message)
    if result.dns:
        check.hosts.setdefault(result.dns, []).append(path)


def _stream_key(value: object, path: str, check: Check) -> None:
    key = str(value)
    for message in check_stream_key(key):
        check.problem(path, message)
    if 0 < len(key) < SHORT_KEY:
        # Not refused: a server of one's own may take any stream name.
        check.warn(
            path,
            f"is only {len(key)} characters long, shorter than any platform issues: check "
            "it (a short key is easy to guess, and the relay masks it wherever it appears "
            "in its logs and status, which makes them hard to read)",
        )


def _secret_ref(waiting: str, selector: type[models.Model] = models.SecretKeySelector) -> Rule:
    default_key = str(selector.model_fields["key"].default)

    def rule(value: object, path: str, check: Check) -> None:
        assert isinstance(value, dict)
        name, key = value.get(_REF_NAME), value.get(_REF_KEY, default_key)
        if (
            isinstance(name, str)
            and isinstance(key, str)
            and not check_secret_name(name)
            and not check_secret_key(key)
        ):
            check.secrets.append(ReferencedSecret(field=path, name=name, key=key, waiting=waiting))

    return rule


def _tls_secret_ref(value: object, path: str, check: Check) -> None:
    """The ingest's certificate: the author must be able to read the Secret (the ingest
    pod mounts it, key included), like any Secret a LiveStream names."""
    assert isinstance(value, dict)
    name = value.get(_REF_NAME)
    if isinstance(name, str) and not check_secret_name(name):
        check.secrets.append(
            ReferencedSecret(field=path, name=name, key=TLS_CERT, waiting="the ingest")
        )


def _secret_name(value: object, path: str, check: Check) -> None:
    for message in check_secret_name(str(value)):
        check.problem(path, message)


def _secret_key(value: object, path: str, check: Check) -> None:
    for message in check_secret_key(str(value)):
        check.problem(path, message)


def _reconnect(value: object, path: str, check: Check) -> None:
    assert isinstance(value, dict)
    low, high = value.get(_MIN_DELAY), value.get(_MAX_DELAY)
    if isinstance(low, int) and isinstance(high, int) and low > high:
        check.problem(
            path,
            f"{_MIN_DELAY} ({low}) exceeds {_MAX_DELAY} ({high}): lower {_MIN_DELAY} or "
            f"raise {_MAX_DELAY}",
        )


def _rendition_label(value: object, path: str, check: Check) -> None:
    """A rendition's name, where it is defined or referred to: a DNS label."""
    text = str(value)
    if not text:
        check.problem(path, "must not be empty: name a rendition, e.g. 720p")
    elif len(text) > models.MAX_RENDITION_NAME_LENGTH:
        check.problem(
            path,
            f"is {len(text)} characters long, more than {models.MAX_RENDITION_NAME_LENGTH}: "
            "use a short name such as 720p",
        )
    elif not re.fullmatch(models.RENDITION_NAME, text):
        check.problem(
            path,
            f"{text!r} is not a rendition name: use lowercase letters, digits and '-' "
            "(not first or last), e.g. 720p or 480p-low",
        )


def _defined_renditions(spec: dict[object, object]) -> list[str]:
    entries = spec.get(_RENDITIONS)
    if not isinstance(entries, list):
        return []
    names = (e.get(_RENDITION_NAME) for e in entries[:MAX_ITEMS] if isinstance(e, dict))
    return list(dict.fromkeys(n for n in names if isinstance(n, str)))


def _spec(value: object, path: str, check: Check) -> None:
    """What needs two lists at once: every restreams[].rendition names a defined
    rendition; a rendition no destination uses is worth a word."""
    assert isinstance(value, dict)
    defined = _defined_renditions(value)
    restreams = value.get(_RESTREAMS)
    used: set[str] = set()
    for index, entry in enumerate(restreams[:MAX_ITEMS] if isinstance(restreams, list) else []):
        if not isinstance(entry, dict):
            continue
        wanted = entry.get(_RENDITION)
        if not isinstance(wanted, str):
            continue
        if entry.get(_ENABLED) is not False:
            used.add(wanted)
        if wanted in defined:
            continue
        where = f"{item(f'{path}.{_RESTREAMS}', index, entry)}.{_RENDITION}"
        known = (
            f"spec.{_RENDITIONS} defines {', '.join(defined)}"
            if defined
            else f"spec.{_RENDITIONS} defines none"
        )
        check.problem(
            where,
            f"names the rendition {wanted!r}, which does not exist ({known}): use one of "
            f"those, add a rendition named {wanted!r} to spec.{_RENDITIONS}, or remove "
            f"{_RENDITION} to send the source as published",
        )
    for name in defined:
        if name not in used:
            check.warn(
                f"{path}.{_RENDITIONS}",
                f"rendition {name!r} is used by no enabled destination: no encoder runs for "
                f"it until one sets {_RENDITION}: {name}",
            )


def _renditions(value: object, path: str, check: Check) -> None:
    assert isinstance(value, list)
    seen: dict[str, str] = {}
    for index, entry in enumerate(value[:MAX_ITEMS]):
        if not isinstance(entry, dict) or not isinstance(entry.get(_RENDITION_NAME), str):
            continue
        name = entry[_RENDITION_NAME]
        label = item(path, index, entry)
        if name in seen:
            check.problem(
                f"{label}.{_RENDITION_NAME}",
                f"the same name as {seen[name]}: rendition names must be unique (restreams "
                "refer to them by name); rename or remove one",
            )
        else:
            seen[name] = label


def _rendition_video(value: object, path: str, check: Check) -> None:
    assert isinstance(value, dict)
    rate, peak = value.get(_BITRATE), value.get(_MAX_BITRATE)
    if isinstance(rate, int) and isinstance(peak, int) and peak < rate:
        check.problem(
            f"{path}.{_MAX_BITRATE}",
            f"maxBitrateKbps must be at least bitrateKbps ({peak} < {rate}): raise "
            f"{_MAX_BITRATE}, or remove it for constant-bitrate-like output",
        )


def _rendition_height(value: object, path: str, check: Check) -> None:
    if isinstance(value, int) and value % 2:
        check.problem(
            path,
            f"height must be even (H.264 4:2:0 needs even dimensions), not {value}: use "
            f"{value - 1} or {value + 1}",
        )


def _resource_map(value: object, path: str, check: Check) -> None:
    assert isinstance(value, dict)
    for key, quantity in value.items():
        if not isinstance(key, str):
            continue
        for message in check_qualified_name(key, "resource name"):
            check.problem(field(path, key), message)
        for message in check_quantity(quantity):
            check.problem(field(path, key), message)


def _annotations(value: object, path: str, check: Check) -> None:
    assert isinstance(value, dict)
    for key in value:
        if isinstance(key, str):
            for message in check_qualified_name(key, "annotation key"):
                check.problem(field(path, key), message)


RULES: dict[FieldKey, Rule] = {
    models.LiveStreamSpec: _spec,
    (models.LiveStreamSpec, "renditions"): _renditions,
    (models.Rendition, "name"): _rendition_label,
    (models.Restream, "rendition"): _rendition_label,
    models.RenditionVideo: _rendition_video,
    (models.RenditionVideo, "height"): _rendition_height,
    (models.LiveStreamSpec, "restreams"): _restreams,
    models.Restream: _restream,
    models.DestinationTLS: _destination_tls,
    (models.DestinationTLS, "ca_secret_ref"): _secret_ref("the relay", models.CASecretKeySelector),
    (models.SRTOptions, "passphrase_secret_ref"): _secret_ref(
        "the relay", models.PassphraseSecretKeySelector
    ),
    (models.CASecretKeySelector, "name"): _secret_name,
    (models.CASecretKeySelector, "key"): _secret_key,
    (models.PassphraseSecretKeySelector, "name"): _secret_name,
    (models.PassphraseSecretKeySelector, "key"): _secret_key,
    (models.Restream, "name"): _restream_name,
    (models.Restream, "server_url"): _server_url,
    (models.Restream, "stream_key"): _stream_key,
    (models.Restream, "stream_key_secret_ref"): _secret_ref("the relay"),
    (models.LiveStreamSpec, "stream_key_secret_ref"): _secret_ref("the ingest"),
    models.IngestSpec: _ingest,
    (models.IngestTLS, "secret_ref"): _tls_secret_ref,
    (models.TLSSecretReference, "name"): _secret_name,
    (models.SecretKeySelector, "name"): _secret_name,
    (models.SecretKeySelector, "key"): _secret_key,
    models.ReconnectSpec: _reconnect,
    (models.ResourceRequirements, "limits"): _resource_map,
    (models.ResourceRequirements, "requests"): _resource_map,
    (models.IngestSpec, "service_annotations"): _annotations,
}
# Fields whose length/pattern/size limits the rules above word better than "too long".
OWN_CONSTRAINTS: frozenset[FieldKey] = frozenset(
    {
        (models.LiveStreamSpec, "restreams"),
        (models.Restream, "name"),
        (models.Restream, "server_url"),
        (models.Restream, "stream_key"),
        (models.Restream, "rendition"),
        (models.Rendition, "name"),
        (models.SecretKeySelector, "name"),
        (models.SecretKeySelector, "key"),
        (models.CASecretKeySelector, "name"),
        (models.CASecretKeySelector, "key"),
        (models.PassphraseSecretKeySelector, "name"),
        (models.PassphraseSecretKeySelector, "key"),
        (models.TLSSecretReference, "name"),
    }
)
REQUIRED_HINTS: dict[FieldKey, str] = {
    (models.Restream, "name"): "give every destination a name, e.g. name: Youtube",
    (models.Restream, "server_url"): f"set the destination's ingest URL, {EXAMPLE_URL}",
    (models.SecretKeySelector, "name"): "name the Secret that holds the key",
    (models.CASecretKeySelector, "name"): "name the Secret that holds the CA certificate",
    (models.PassphraseSecretKeySelector, "name"): "name the Secret that holds the passphrase",
    (models.Rendition, "name"): "name the rendition, e.g. name: 720p",
    (models.Rendition, "video"): "set the video profile, e.g. video: {height: 720, "
    "bitrateKbps: 3000}",
    (models.RenditionVideo, "height"): "set the output height, e.g. height: 720",
    (models.RenditionVideo, "bitrate_kbps"): "set the target bitrate, e.g. bitrateKbps: 3000",
    (models.IngestTLS, "secret_ref"): "name the kubernetes.io/tls Secret of the ingest's "
    "certificate, e.g. secretRef: {name: ingest-tls}",
    (models.TLSSecretReference, "name"): "name the kubernetes.io/tls Secret of the ingest's "
    "certificate",
}


_T = TypeVar("_T")


def _by_path(table: Mapping[FieldKey, _T]) -> dict[str, _T]:
    return {path: value for key, value in table.items() for path in paths_of(key)}


SPEC_RULES = NodeRules(
    rules=_by_path(RULES),
    own_constraints=frozenset(_by_path(dict.fromkeys(OWN_CONSTRAINTS, True))),
    required_hints=_by_path(REQUIRED_HINTS),
)
