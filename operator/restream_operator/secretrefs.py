"""The Secrets a LiveStream's spec names, and which of them are missing: as records.

The status decides from these whether the ingest or a relay is waiting for a Secret, so
the decision rests on who reads the Secret, never on the wording of a message (a
restream may be named anything, "spec.streamKeySecretRef" included).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import models
from .render.nginx import TLS_CERT, TLS_KEY
from .render.relay import ca_secret_ref, passphrase_secret_ref


@dataclass(frozen=True)
class SecretUse:
    """One Secret key the spec names, and who reads it: the ingest (restream None) or
    the relay of one restream, through ``field`` (below ``restreams[]``)."""

    name: str
    key: str
    restream: str | None = None
    field: str = "streamKeySecretRef"

    @property
    def reader(self) -> str:
        if self.restream is None:
            return f"spec.{self.field}"
        if self.field == "streamKeySecretRef":
            return f"restream {self.restream!r}"
        return f"restream {self.restream!r}, {self.field}"


@dataclass(frozen=True)
class MissingSecret:
    """A named Secret that does not exist (``secret_exists`` False), or exists without
    the named key."""

    use: SecretUse
    secret_exists: bool = False

    @property
    def for_ingest(self) -> bool:
        return self.use.restream is None

    def __str__(self) -> str:
        u = self.use
        if self.secret_exists:
            return f"Secret {u.name!r} has no key {u.key!r} (for {u.reader})"
        return f"Secret {u.name!r} (for {u.reader}) does not exist"


def secret_uses(spec: models.LiveStreamSpec) -> list[SecretUse]:
    """Every Secret key a user named in the spec that a pod will read."""
    uses = []
    if spec.stream_key_secret_ref is not None:
        ref = spec.stream_key_secret_ref
        uses.append(SecretUse(ref.name, ref.key))
    if spec.ingest.tls is not None and spec.ingest.serves("RTMPS"):
        # The certificate and its key: a kubernetes.io/tls Secret has both or neither.
        tls = spec.ingest.tls.secret_ref.name
        for key in (TLS_CERT, TLS_KEY):
            uses.append(SecretUse(tls, key, field="ingest.tls.secretRef"))
    for r in spec.restreams:
        if not r.enabled:
            continue
        if r.stream_key_secret_ref is not None:
            ref = r.stream_key_secret_ref
            uses.append(SecretUse(ref.name, ref.key, r.name))
        ca = ca_secret_ref(r)
        if ca is not None:
            uses.append(SecretUse(ca.name, ca.key, r.name, "tls.caSecretRef"))
        passphrase = passphrase_secret_ref(r)
        if passphrase is not None:
            uses.append(
                SecretUse(passphrase.name, passphrase.key, r.name, "srt.passphraseSecretRef")
            )
    return uses


# name -> the Secret as the API gives it, or None when there is none
SecretGetter = Callable[[str], dict[str, Any] | None]


def missing_secrets(spec: models.LiveStreamSpec, get: SecretGetter) -> list[MissingSecret]:
    missing: list[MissingSecret] = []
    fetched: dict[str, dict[str, Any] | None] = {}
    for use in secret_uses(spec):
        if use.name not in fetched:
            fetched[use.name] = get(use.name)
        secret = fetched[use.name]
        if secret is None:
            # A Secret read for two keys (a TLS pair) is missing once, not once per key.
            gone = MissingSecret(use)
            if str(gone) not in map(str, missing):
                missing.append(gone)
        elif use.key not in (secret.get("data") or {}):
            missing.append(MissingSecret(use, secret_exists=True))
    return missing
