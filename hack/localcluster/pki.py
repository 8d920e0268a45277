"""Certificates for the local control plane (made with the operator's own certs module).

One CA signs everything: the apiserver's serving certificate and the client certificates
of the admin and of each control-plane component, so that RBAC sees real identities.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from restream_operator import certs

_VALIDITY = dt.timedelta(days=2)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)
    return path


class CertificateAuthority:
    """A throw-away CA; its files live in the cluster's temp dir and die with it."""

    def __init__(self, directory: Path, common_name: str = "restream-test-ca") -> None:
        self.directory = directory
        self._key, self._cert = certs.new_ca(common_name, _VALIDITY)
        self.pair = KeyPair(
            _write(directory / "ca.crt", certs.pem(self._cert)),
            _write(directory / "ca.key", certs.pem_key(self._key), private=True),
        )

    @property
    def pem(self) -> bytes:
        return certs.pem(self._cert)

    def issue(
        self,
        stem: str,
        common_name: str,
        *,
        organization: str | None = None,
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
        server: bool = False,
        client: bool = False,
    ) -> KeyPair:
        key, cert = certs.issue(
            self._key,
            self._cert,
            common_name,
            names=(*dns_names, *ip_addresses),
            organization=organization,
            server=server,
            client=client,
            validity=_VALIDITY,
        )
        return KeyPair(
            _write(self.directory / f"{stem}.crt", certs.pem(cert)),
            _write(self.directory / f"{stem}.key", certs.pem_key(key), private=True),
        )


def service_account_keys(directory: Path) -> KeyPair:
    """The RSA pair the apiserver signs and verifies service-account tokens with."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair(
        _write(
            directory / "sa.pub",
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        ),
        _write(
            directory / "sa.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            private=True,
        ),
    )


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of a PEM certificate's DER form (the first one of a chain)."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem.decode())).hexdigest()


def served_fingerprint(
    address: str, port: int, *, ca: Path | None = None, server_name: str | None = None
) -> str:
    """SHA-256 of the certificate a new TLS client of ``address``:``port`` is given.
    With ``ca``, the handshake verifies it against that CA for ``server_name`` (the
    address itself if None) and fails otherwise; without, nothing is verified."""
    if ca is not None:
        ctx = ssl.create_default_context(cafile=str(ca))
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection((address, port), 3) as raw,
        ctx.wrap_socket(raw, server_hostname=server_name or address) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()
