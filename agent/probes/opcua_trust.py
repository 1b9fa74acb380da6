"""Which OPC UA server certificates the agent trusts.

A server certificate is trusted when it is one of the certificates in the trust directory (DER or PEM
files), or was issued directly by one of them (a CA) and is within its validity period. With `tofu` the
first certificate an endpoint presents is pinned into the directory (`tofu-<host>_<port>.der`); from then
on that endpoint must present the pinned one (or one the list trusts): a changed certificate is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from cryptography import x509

CERT_SUFFIXES = frozenset({".der", ".pem", ".crt", ".cer"})


def fingerprint(der: bytes) -> str:
    """SHA-256 of the DER bytes as colon-separated upper-case hex (what certificate viewers show)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def first_certificate(der: bytes) -> bytes:
    """The leading certificate of a DER chain (servers may send theirs followed by its issuers)."""
    if len(der) < 4 or der[0] != 0x30 or der[1] != 0x82:
        return der
    return der[: int.from_bytes(der[2:4], "big") + 4]


def _load_all(path: Path) -> list[x509.Certificate]:
    from cryptography import x509  # only when a secure session checks a certificate (docs/footprint.md)

    data = path.read_bytes()
    if b"-----BEGIN CERTIFICATE" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def pin_name(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    host = re.sub(r"[^A-Za-z0-9.-]", "_", parts.hostname or "server")
    return f"tofu-{host}_{parts.port or 4840}.der"


@dataclass(frozen=True)
class Verdict:
    trusted: bool
    reason: str = ""  # why not, in words


@dataclass(frozen=True)
class TrustList:
    directory: Path | None
    tofu: bool = False

    def certificates(self) -> list[tuple[Path, x509.Certificate]]:
        """Every readable certificate in the directory (unreadable files are skipped: they trust nothing)."""
        if self.directory is None or not self.directory.is_dir():
            return []
        found: list[tuple[Path, x509.Certificate]] = []
        for path in sorted(self.directory.iterdir()):
            if path.suffix.lower() in CERT_SUFFIXES and path.is_file():
                with contextlib.suppress(OSError, ValueError):
                    found.extend((path, cert) for cert in _load_all(path))
        return found

    def check(self, endpoint: str, der: bytes, now: datetime | None = None) -> Verdict:
        """Whether `der` may be the server at `endpoint`; with tofu, pins it when the endpoint has no pin yet."""
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        cert = x509.load_der_x509_certificate(der)
        when = now or datetime.now(UTC)
        pin = self.directory / pin_name(endpoint) if self.directory is not None else None
        pinned: bytes | None = None
        for path, known in self.certificates():
            known_der = known.public_bytes(Encoding.DER)
            if path == pin:
                pinned = known_der
            if known_der == der or _issued_by(cert, known, when):
                return Verdict(True)
        if self.tofu and pin is not None and pinned is None and not pin.exists():
            _write_pin(pin, der)
            return Verdict(True)
        if pinned is not None:
            return Verdict(False, f"it changed since first use (pinned: {pin})")
        if self.directory is None:
            return Verdict(False, "no trust_dir configured")
        return Verdict(False, f"not in the trust list {self.directory}")

    def add(self, der: bytes, name: str) -> Path:
        """Trust `der` from now on: write it into the directory as `<name>.der`."""
        assert self.directory is not None
        path = self.directory / f"{re.sub(r'[^A-Za-z0-9._-]', '_', name)}.der"
        _write_pin(path, der)
        return path


def _issued_by(cert: x509.Certificate, ca: x509.Certificate, now: datetime) -> bool:
    from cryptography.exceptions import InvalidSignature

    if cert.issuer != ca.subject or cert == ca:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _write_pin(path: Path, der: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(der)
