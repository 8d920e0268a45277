"""Certificates for the local control plane (made with the operator's own certs module).

One CA signs everything: the apiserver's serving certificate and the client certificates
of the admin and of each control-plane component, so that RBAC sees real identities.
"""

from __future__ import annotations

import datetime as dt
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
