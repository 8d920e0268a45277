"""Masking secrets in every text an agent emits: logs, /status, forwarded tool output.

Documents (a log line, a /status body) are masked value by value before they are
serialized, never as serialized text: a short key such as "a" or "1" would otherwise
cut through the JSON's own quotes, names and numbers.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"


def secret_forms(secret: str) -> set[str]:
    """The spellings a secret can take on its way through URLs, forms and JSON."""
    if not secret:
        return set()
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret, safe="/"),
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
    }
    # Percent-encoders disagree on the case of hex digits (nginx: upper, others: lower).
    forms |= {_lower_hex(f) for f in forms if "%" in f}
    return forms


def _lower_hex(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        if text[i] == "%" and i + 2 < len(text):
            out.append("%" + text[i + 1 : i + 3].lower())
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class Redactor:
    """Replaces every known spelling of every secret with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: list[str] = []
        # How many holders each secret has: the console's sessions come and go, and two
        # of them may hold the same token.
        self._secrets: Counter[str] = Counter()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        self._secrets[secret] += 1
        if self._secrets[secret] == 1:
            self._sort(set(self._forms) | secret_forms(secret))

    def discard(self, secret: str) -> None:
        """Forgets one holder of ``secret``; masks it no more once none is left."""
        if self._secrets[secret] > 1:
            self._secrets[secret] -= 1
            return
        self._secrets.pop(secret, None)
        self._sort(set().union(*map(secret_forms, self._secrets)))

    def _sort(self, forms: set[str]) -> None:
        # Longest first, so that a secret containing another one is masked whole.
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def value(self, obj: Any, keep: Collection[str] = ()) -> Any:
        """A JSON-like document with every string value masked, except those under the
        keys in ``keep`` (the agent's own: its times and states, which the operator
        parses). Keys are the agent's own names and stay as they are: a one-character
        key would mask them into nonsense. Anything that is not JSON becomes its masked
        str()."""
        if isinstance(obj, str):
            return self(obj)
        if obj is None or isinstance(obj, bool | int | float):
            return obj
        if isinstance(obj, dict):
            return {str(k): v if k in keep else self.value(v, keep) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.value(v, keep) for v in obj]
        return self(str(obj))

    def __bool__(self) -> bool:
        return bool(self._forms)
