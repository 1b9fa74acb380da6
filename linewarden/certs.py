"""Certificates: when they expire, and a small certificate authority for sites without a PKI of their own.

Pure functions over PEM/DER bytes; the caller passes the time and does the file I/O. The authority made here
(`new_authority`, `issue`) is for a plant that has none: one CA key on an admin's machine, a certificate per
agent, broker and collector. A plant with a PKI issues from it instead; everything else works the same.

Reading a certificate's expiry and common name walks the DER itself: `cryptography` costs a process ~10 MB
of memory, and an agent needs it only to issue certificates (never) or for a subject without a common name.
"""

from __future__ import annotations

import binascii
import datetime as dt
import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from linewarden.errors import LinewardenError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

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


_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
_SEQUENCE, _SET, _OID, _UTC_TIME, _GENERALIZED_TIME, _VERSION = 0x30, 0x31, 0x06, 0x17, 0x18, 0xA0
_COMMON_NAME = bytes([0x55, 0x04, 0x03])  # 2.5.4.3
_STRINGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be", 0x1C: "utf-32-be"}


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start, end) of the DER element at `pos`, which must lie within `end`; ValueError otherwise."""
    if pos + 2 > end:
        raise ValueError("truncated element")
    tag, length, pos = data[pos], data[pos + 1], pos + 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4 or pos + size > end:
            raise ValueError("bad length")
        length, pos = int.from_bytes(data[pos:pos + size], "big"), pos + size
    if pos + length > end:
        raise ValueError("element longer than its container")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out, pos = [], start
    while pos < end:
        out.append(_tlv(data, pos, end))
        pos = out[-1][2]
    return out


def _time_ms(tag: int, text: bytes) -> int:
    if tag == _UTC_TIME and re.fullmatch(rb"\d{12}Z", text):
        year = int(text[:2])
        text = (b"19" if year >= 50 else b"20") + text  # RFC 5280 4.1.2.5.1
    elif not (tag == _GENERALIZED_TIME and re.fullmatch(rb"\d{14}Z", text)):
        raise ValueError("not a UTCTime or GeneralizedTime")
    when = dt.datetime.strptime(text.decode(), "%Y%m%d%H%M%SZ").replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def _common_name(data: bytes, start: int, end: int) -> str | None:
    for tag, set_start, set_end in _children(data, start, end):
        for _, attr_start, attr_end in _children(data, set_start, set_end) if tag == _SET else ():
            parts = _children(data, attr_start, attr_end)
            if len(parts) == 2 and parts[0][0] == _OID and data[parts[0][1]:parts[0][2]] == _COMMON_NAME:
                value_tag, value_start, value_end = parts[1]
                return data[value_start:value_end].decode(_STRINGS.get(value_tag, "utf-8"))
    return None


def _info(der: bytes, role: Role) -> CertInfo:
    """Role, subject common name and notAfter of one DER certificate; ValueError if it is not one."""
    tag, start, end = _tlv(der, 0, len(der))
    if tag != _SEQUENCE or end != len(der):
        raise ValueError("not a DER certificate")
    tag, start, end = _tlv(der, start, end)
    if tag != _SEQUENCE:
        raise ValueError("no TBSCertificate")
    fields = _children(der, start, end)
    if fields and fields[0][0] == _VERSION:
        fields = fields[1:]
    if len(fields) < 5 or fields[3][0] != _SEQUENCE or fields[4][0] != _SEQUENCE:
        raise ValueError("no validity and subject")
    validity = _children(der, fields[3][1], fields[3][2])
    if len(validity) != 2:
        raise ValueError("bad validity")
    not_after = _time_ms(validity[1][0], der[validity[1][1]:validity[1][2]])
    subject = _common_name(der, fields[4][1], fields[4][2])
    if subject is None:  # rare; cryptography spells the whole subject as RFC 4514 does
        from cryptography import x509

        subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    return CertInfo(role, subject, not_after)


def inspect_pem(data: bytes, role: Role) -> list[CertInfo]:
    """Every certificate in a PEM bundle (a CA file may hold several)."""
    try:
        blocks = [binascii.a2b_base64(b"".join(m.split())) for m in _PEM.findall(data)]
        if not blocks:
            raise ValueError("no certificate in it")
        return [_info(der, role) for der in blocks]
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise CertError(f"not a PEM certificate: {exc}") from None


def inspect_der(data: bytes, role: Role) -> CertInfo:
    try:
        return _info(data, role)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CertError(f"not a DER certificate: {exc}") from None


def expiring(certs: list[CertInfo], now_ms: int, days: int) -> list[CertInfo]:
    return [c for c in certs if c.expires_within(now_ms, days)]


# ---------------------------------------------------------------- a small certificate authority


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_authority(name: str, now: dt.datetime, days: int) -> Issued:
    """A self-signed CA that may sign end-entity certificates only (path length 0)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

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
    from cryptography import x509

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
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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
