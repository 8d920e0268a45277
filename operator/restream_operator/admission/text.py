"""How user values appear in admission messages: quoted, shortened, never garbling.

A refusal is read in a terminal (``kubectl apply``), a CI log, an Event: a value that
holds escape sequences, bidi overrides or a megabyte of text must not garble it.
"""

from __future__ import annotations

import re
import unicodedata

from .. import models

# Characters no name or URL may hold: controls (C0, DEL, C1), invisible format characters
# (bidi overrides and isolates U+202A-202E/2066-2069, zero-width characters, soft hyphen,
# BOM, tags), lone surrogates, and line/paragraph separators. Format characters are
# refused as well as controls because they make two different names look the same in
# `kubectl get` and reorder what people read (Trojan Source), while no destination name
# needs them. Lone surrogates only exist in Python strings (never in what the API
# server decodes), so the CRD's rules need not name them.
INVISIBLE_CATEGORIES = frozenset({*models.NAME_FORBIDDEN_CATEGORIES, "Cs"})


def char(ch: str) -> str:
    """A character by code point and name: ``U+202E RIGHT-TO-LEFT OVERRIDE``."""
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X} {name}" if name else f"U+{ord(ch):04X}"


def quote(text: str, limit: int = 60) -> str:
    """A user value made safe to print: quoted, shortened, invisible characters escaped."""
    shown = text if len(text) <= limit else text[:limit] + "…"
    out = []
    for ch in shown:
        if ch in '"\\':
            out.append("\\" + ch)
        elif unicodedata.category(ch) in INVISIBLE_CATEGORIES or (ch.isspace() and ch != " "):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "a boolean"),  # before int: a bool is an int in Python
    (int, "an integer"),
    (float, "a number"),
    ((bytes, bytearray), "bytes"),
    ((list, tuple), "a list"),
    (dict, "a mapping"),
)


def kind(value: object) -> str:
    """What a value is, for "must be X, not Y" messages."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the string {quote(value, 30)}"
    return next((k for t, k in _KINDS if isinstance(value, t)), f"a {type(value).__name__}")


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_./-]{1,100}")


def field(path: str, key: str) -> str:
    """``path.key``, or ``path["odd key"]`` when the key could garble the output."""
    if not _PLAIN_KEY.fullmatch(key):
        return f"{path}[{quote(key)}]"
    return f"{path}.{key}" if path else key


def item(path: str, index: int, value: object) -> str:
    """``spec.restreams[1] ("Twitch")``: the index, and the name where there is one."""
    label = f"{path}[{index}]"
    if isinstance(value, dict) and isinstance(value.get("name"), str) and value["name"]:
        label += f" ({quote(value['name'], 40)})"
    return label
