"""Certificates: when they expire, and a small certificate authority for sites without a PKI of their own.

Pure functions over PEM/DER bytes; the caller passes the time and does the file I/O. The authority made here
(`new_authority`, `issue`) is for a plant that has none: one CA key on an admin's machine, a certificate per
agent, broker and collector. A plant with a PKI issues from it instead; everything else works the same.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from linewarden.errors import LinewardenError

DAY_MS = 86_400_000


class CertError(LinewardenError):
    """A certificate or key that cannot be read or used."""


class Role(StrEnum):
    OWN = "own"  # the certificate this process presents
    CA = "ca"  # a certificate it trusts
    PEER = "peer"  # the certificate the other side presented at connect


@dataclass(frozen=True)
class CertInfo:
    role: Role
    subject: str  # the common name, or the whole subject without one
    not_after_ms: int

    def days_left(self, now_ms: int) -> float:
        return (self.not_after_ms - now_ms) / DAY_MS

    def expires_within(self, now_ms: int, days: int) -> bool:
        return self.not_after_ms - now_ms <= days * DAY_MS

    def describe(self, now_ms: int) -> str:
        left = self.days_left(now_ms)  # whole days below: 29 days and 23 hours is "29 days"
        when = f"expired {int(-left)} days ago" if left < 0 else f"expires in {int(left)} days"
        return f"{self.role.value} certificate {self.subject!r} {when}"

    def as_dict(self) -> dict[str, str | int]:
        return {"role": self.role.value, "subject": self.subject, "not_after_ms": self.not_after_ms}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> CertInfo:
        """The inverse of `as_dict`; raises CertError for anything else."""
        try:
            return cls(Role(str(data["role"])), str(data["subject"]), int(str(data["not_after_ms"])))
        except (KeyError, ValueError) as exc:
            raise CertError(f"not a certificate record: {exc}") from None


def _info(cert: x509.Certificate, role: Role) -> CertInfo:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject = str(names[0].value) if names else cert.subject.rfc4514_string()
    return CertInfo(role, subject, int(cert.not_valid_after_utc.timestamp() * 1000))


def inspect_pem(data: bytes, role: Role) -> list[CertInfo]:
    """Every certificate in a PEM bundle (a CA file may hold several)."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CertError(f"not a PEM certificate: {exc}") from None
    return [_info(c, role) for c in certs]


def inspect_der(data: bytes, role: Role) -> CertInfo:
    try:
        return _info(x509.load_der_x509_certificate(data), role)
    except ValueError as exc:
        raise CertError(f"not a DER certificate: {exc}") from None


def expiring(certs: list[CertInfo], now_ms: int, days: int) -> list[CertInfo]:
    return [c for c in certs if c.expires_within(now_ms, days)]


# ---------------------------------------------------------------- a small certificate authority


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_authority(name: str, now: dt.datetime, days: int) -> Issued:
    """A self-signed CA that may sign end-entity certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue(
    authority: Issued,
    common_name: str,
    now: dt.datetime,
    days: int,
    *,
    server_names: list[str] | None = None,
    client: bool = True,
) -> Issued:
    """A certificate signed by `authority` for `common_name`.

    With `server_names` (host names or IP addresses) it is a server certificate for those names; `client` makes
    it usable as a client certificate (the broker takes the common name as the MQTT user name).
    """
    try:
        ca_cert = x509.load_pem_x509_certificate(authority.cert_pem)
        ca_key = serialization.load_pem_private_key(authority.key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertError(f"cannot read the CA certificate or key: {exc}") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CertError("the CA key is not an EC key made by `linewarden certs init`")
    if not (server_names or client):
        raise CertError("a certificate must be a server or a client certificate")
    key = ec.generate_private_key(ec.SECP256R1())
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server_names else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, True, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server_names:
        builder = builder.add_extension(x509.SubjectAlternativeName([_san(n) for n in server_names]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))
