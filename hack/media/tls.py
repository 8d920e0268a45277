"""Certificates for the media tests' TLS sinks: self-signed ones, and (with
hack.localcluster.pki's CertificateAuthority) ones a private CA signs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hack.localcluster.pki import KeyPair
from restream_operator import certs


def self_signed(directory: Path, stem: str, names: tuple[str, ...]) -> KeyPair:
    """A server certificate for ``names`` (IP addresses or DNS names) that is its own
    issuer: what no CA bundle trusts, and what a destination run by hand often has."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{stem} (self-signed)")])
    cert = (
        certs.builder(name, name, key, dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([certs.san(n) for n in names]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pair = KeyPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    pair.cert.write_bytes(certs.pem(cert))
    pair.key.write_bytes(certs.pem_key(key))
    pair.key.chmod(0o600)
    return pair
