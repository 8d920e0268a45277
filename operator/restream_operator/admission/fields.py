"""Names, keys and quantities: the rules on one value each, with a message per case.

Restream names (free text that must stay readable and distinct), stream keys (printable
ASCII, never echoed), Secret names and keys, the LiveStream's own name (it names the
ingest Service), resource quantities and qualified names (resource names, annotation
keys). Patterns and limits come from the models and the CRD, which hold them once.
"""

from __future__ import annotations

import re
import unicodedata

from .. import crd, models
from .schema import max_length
from .text import INVISIBLE_CATEGORIES, char, kind, quote

_DNS_SUBDOMAIN = re.compile(models.DNS_SUBDOMAIN)
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SECRET_NAME_MAX = max_length(models.SecretKeySelector, "name")
_SECRET_KEY = re.compile(models.SECRET_KEY)
_SECRET_KEY_MAX = max_length(models.SecretKeySelector, "key")
_STREAM_KEY_CHAR = re.compile(f"[{models.STREAM_KEY_CHARS}]")
_STREAM_KEY_MAX = max_length(models.Restream, "stream_key")
_RESTREAM_NAME_MAX = max_length(models.Restream, "name")
_LIVESTREAM_NAME = re.compile(crd.LIVESTREAM_NAME)
# Resource names and annotation keys: a qualified name, with an optional DNS prefix.
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_QUANTITY = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?")


def check_stream_key(key: str) -> list[str]:
    """A stream key is 1-512 printable ASCII characters: destinations issue nothing else,
    so anything outside that is a paste error (or a look-alike). Never echoes the key."""
    if not key:
        return ["is empty: paste the destination's stream key, or use streamKeySecretRef"]
    if len(key) > _STREAM_KEY_MAX:
        return [f"is {len(key)} characters long, more than {_STREAM_KEY_MAX}: check it"]
    for position, ch in enumerate(key, 1):
        if _STREAM_KEY_CHAR.fullmatch(ch):
            continue
        category = unicodedata.category(ch)
        if category == "Cc":
            what = f"a control character ({char(ch)})"
        elif ch.isspace() or category.startswith("Z"):
            what = f"whitespace ({char(ch)})"
        elif category in INVISIBLE_CATEGORIES:
            what = f"an invisible character ({char(ch)})"
        else:
            what = f"a non-ASCII character ({char(ch)})"
        return [
            f"contains {what} at character {position}: stream keys are printable ASCII "
            "without spaces; copy the key again"
        ]
    return []


def check_secret_name(name: str) -> list[str]:
    if not name:
        return ["is empty: name the Secret that holds the key"]
    if len(name) > _SECRET_NAME_MAX or not _DNS_SUBDOMAIN.fullmatch(name):
        return [
            f"{quote(name)} is not a valid Secret name: lowercase a-z, 0-9, '-' and '.', "
            f"starting and ending with a letter or digit, at most {_SECRET_NAME_MAX} characters"
        ]
    return []


def check_secret_key(key: str) -> list[str]:
    if not key:
        return ["is empty: give the key within the Secret (or leave it out for streamKey)"]
    if len(key) > _SECRET_KEY_MAX or not _SECRET_KEY.fullmatch(key):
        return [
            f"{quote(key)} is not a valid key of a Secret: a-z, A-Z, 0-9, '-', '_' and "
            f"'.' only, at most {_SECRET_KEY_MAX} characters"
        ]
    return []


def _invisible_in_name(name: str) -> str | None:
    for position, ch in enumerate(name, 1):
        category = unicodedata.category(ch)
        if category == "Cc":
            return f"contains a control character ({char(ch)}) at character {position}: remove it"
        if category in INVISIBLE_CATEGORIES:
            return (
                f"contains an invisible or text-reordering character ({char(ch)}) at "
                f"character {position}: remove it (it makes names look like others)"
            )
    return None


def check_restream_name(name: str) -> list[str]:
    """Free text ("Youtube", "My Twitch", "Ünïcode 🎥"), within what stays readable."""
    limit = _RESTREAM_NAME_MAX
    problem = (
        ("is empty: give the destination a name, e.g. Youtube" if not name else None)
        or ("is blank: give the destination a name, e.g. Youtube" if not name.strip() else None)
        or (
            f"is {len(name)} characters long, more than {limit}: shorten it"
            if len(name) > limit
            else None
        )
        or _invisible_in_name(name)
        or (
            "starts or ends with whitespace: remove it (names differing by it look the same)"
            if name != name.strip()
            else None
        )
        # The relay's command line carries the name, and Kubernetes expands $(VAR) there.
        or (
            "contains '$', which the relay's command line cannot carry as is: remove it"
            if "$" in name
            else None
        )
    )
    return [problem] if problem else []


# Only a file can lack a name: the API server names every object it admits.
NAME_MISSING = "is missing: name the LiveStream, e.g. name: launch"


def check_metadata_name(name: str) -> list[str]:
    limit = crd.MAX_LIVESTREAM_NAME
    if not name:
        return ["is empty: name the LiveStream, e.g. launch"]
    if len(name) > limit:
        return [
            f"{quote(name)} is {len(name)} characters long, more than {limit} (the ingest "
            "Service and the relays are named after it): shorten it"
        ]
    if not _LIVESTREAM_NAME.fullmatch(name):
        return [
            f"{quote(name)} must be lowercase a-z, 0-9 and '-', start with a letter and end "
            "with a letter or digit (it names the ingest Service), e.g. launch-2"
        ]
    return []


def check_namespace(namespace: str) -> list[str]:
    """A namespace's name is a DNS label (RFC 1123): the API server takes nothing else.
    An empty one is as good as none (kubectl then uses its current namespace)."""
    if namespace and (len(namespace) > 63 or not _DNS_LABEL.fullmatch(namespace)):
        return [
            f"{quote(namespace)} is not a namespace name: lowercase a-z, 0-9 and '-', "
            "starting and ending with a letter or digit, at most 63 characters"
        ]
    return []


def check_quantity(value: object) -> list[str]:
    if isinstance(value, int) and not isinstance(value, bool):
        return [] if value >= 0 else ["must not be negative"]
    if isinstance(value, str) and len(value) <= 64 and _QUANTITY.fullmatch(value):
        return [] if not value.startswith("-") else ["must not be negative"]
    shown = quote(value, 30) if isinstance(value, str) else kind(value)
    return [f"{shown} is not a Kubernetes quantity: write e.g. 500m (CPU) or 128Mi (memory)"]


def check_qualified_name(name: str, what: str) -> list[str]:
    prefix, slash, rest = name.rpartition("/")
    ok = bool(rest) and len(rest) <= 63 and bool(_QUALIFIED_NAME.fullmatch(rest))
    if slash:
        ok = ok and len(prefix) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(prefix))
    if ok:
        return []
    return [
        f"{quote(name)} is not a valid {what}: [prefix/]name, the name at most 63 "
        "characters of a-z, A-Z, 0-9, '-', '_' and '.', the prefix a DNS subdomain"
    ]
