"""TLS material for the admission webhook, made with `cryptography`.

(kopf's own self-signed certificates depend on oscrypto, which fails to detect
OpenSSL 3.0.10 and later.) A small CA signs the serving certificate; the CA goes into
the webhook configurations' caBundle.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = dt.timedelta(days=3650)
CERT_VALIDITY = dt.timedelta(days=365)
# Regenerate when less than this is left, so a restart renews in time.
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class ServingCert:
    ca: bytes  # PEM
    cert: bytes  # PEM
    key: bytes  # PEM

    def write(self, directory: Path) -> tuple[Path, Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = (directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
        for path, data in zip(paths, (self.ca, self.cert, self.key), strict=True):
            path.write_bytes(data)
        paths[2].chmod(0o600)
        return paths

    def expires(self) -> dt.datetime:
        return x509.load_pem_x509_certificate(self.cert).not_valid_after_utc

    def covers(self, names: list[str]) -> bool:
        cert = x509.load_pem_x509_certificate(self.cert)
        try:
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        have = {str(v) for v in sans.get_values_for_type(x509.DNSName)}
        have |= {str(v) for v in sans.get_values_for_type(x509.IPAddress)}
        return set(names) <= have

    def fresh_for(self, names: list[str]) -> bool:
        return self.covers(names) and self.expires() - dt.datetime.now(dt.UTC) > RENEW_BEFORE


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def san(name: str) -> x509.GeneralName:
    """A subjectAltName entry: an IP address, or else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    validity: dt.timedelta,
) -> x509.CertificateBuilder:
    """What every certificate here starts from: valid from five minutes ago, so that a
    peer whose clock is a little behind accepts it at once."""
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
    )


def new_ca(
    common_name: str, validity: dt.timedelta = CA_VALIDITY
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA that may sign leaf certificates (and nothing below them)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        builder(name, name, key, validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    *,
    names: tuple[str, ...] | list[str] = (),
    organization: str | None = None,
    server: bool = True,
    client: bool = False,
    validity: dt.timedelta = CERT_VALIDITY,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A leaf certificate signed by the CA, for `names` (DNS names or IP addresses)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        subject.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
    usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    leaf = (
        builder(x509.Name(subject), ca_cert.subject, key, validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if names:
        leaf = leaf.add_extension(
            x509.SubjectAlternativeName([san(n) for n in names]), critical=False
        )
    return key, leaf.sign(ca_key, hashes.SHA256())


def issue_serving_cert(
    names: list[str], common_name: str = "restream-operator-webhook"
) -> ServingCert:
    """A fresh CA and a serving certificate for `names` (DNS names or IP addresses)."""
    ca_key, ca = new_ca(f"{common_name}-ca")
    key, cert = issue(ca_key, ca, common_name, names=names)
    return ServingCert(ca=pem(ca), cert=pem(cert), key=pem_key(key))
