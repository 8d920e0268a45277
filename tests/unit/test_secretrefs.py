"""Which Secrets a LiveStream's pods read (for the missing-Secret status and the
permission check), and how a missing one is reported."""

from __future__ import annotations

from restream_operator import models
from restream_operator.secretrefs import SecretUse, missing_secrets, secret_uses

from .test_render import CA_REF, PASSPHRASE_REF, RTMPS, SRT


def test_every_secret_a_relay_reads_is_a_secret_use() -> None:
    spec = models.LiveStreamSpec.model_validate(
        {
            "restreams": [
                {**RTMPS, "tls": CA_REF},
                {**SRT, "srt": PASSPHRASE_REF},
                {**RTMPS, "name": "Insecure", "tls": {**CA_REF, "insecureSkipVerify": True}},
                {**SRT, "name": "Off", "srt": PASSPHRASE_REF, "enabled": False},
            ]
        }
    )
    assert secret_uses(spec) == [
        SecretUse("k", "streamKey", "S"),
        SecretUse("studio-ca", "root.pem", "S", "tls.caSecretRef"),
        SecretUse("k", "streamKey", "T"),
        SecretUse("srt", "pass", "T", "srt.passphraseSecretRef"),
        SecretUse("k", "streamKey", "Insecure"),  # not verifying: the CA is not mounted
    ]
    stored = {"k": {"data": {"streamKey": "a2V5"}}, "studio-ca": {"data": {"ca.crt": "Q0E="}}}
    assert [str(m) for m in missing_secrets(spec, stored.get)] == [
        "Secret 'studio-ca' has no key 'root.pem' (for restream 'S', tls.caSecretRef)",
        "Secret 'srt' (for restream 'T', srt.passphraseSecretRef) does not exist",
    ]


def test_a_missing_tls_secret_is_reported_once_and_a_half_pair_by_its_key() -> None:
    spec = models.LiveStreamSpec.model_validate(
        {"ingest": {"tls": {"secretRef": {"name": "ingest-tls"}}}, "restreams": [RTMPS]}
    )
    stored: dict[str, dict[str, object]] = {"k": {"data": {"streamKey": "a2V5"}}}
    assert [str(m) for m in missing_secrets(spec, stored.get)] == [
        "Secret 'ingest-tls' (for spec.ingest.tls.secretRef) does not exist",
    ]
    stored["ingest-tls"] = {"data": {"tls.crt": "Q0VSVA=="}}
    assert [str(m) for m in missing_secrets(spec, stored.get)] == [
        "Secret 'ingest-tls' has no key 'tls.key' (for spec.ingest.tls.secretRef)",
    ]
