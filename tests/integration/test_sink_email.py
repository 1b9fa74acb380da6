"""The e-mail sink against a real SMTP server (aiosmtpd) that requires STARTTLS before AUTH."""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from collector.ticketing.email import EmailTicketSink
from collector.ticketing.registry import make_sink
from linewarden.config.contract import EmailSink
from linewarden.errors import TicketRejected
from simulators.broker import free_port
from tests.fakes.tickets import ticket

USER, PASSWORD = "linewarden", "smtp-pass"


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class Inbox:
    messages: list[Message] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.original_content))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Inbox, int, Path]]:
    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        require_starttls=True,
        authenticator=_authenticate,
        auth_require_tls=True,
        auth_required=True,
    )
    controller.start()
    yield inbox, port, cert
    controller.stop()


def _sink(port: int, ca: Path, monkeypatch: pytest.MonkeyPatch, password: str = PASSWORD) -> EmailTicketSink:
    monkeypatch.setenv("LW_TEST_SMTP_PASSWORD", password)
    config = EmailSink(
        kind="email",
        host="127.0.0.1",
        port=port,
        ca_file=ca,
        username=USER,
        password={"env": "LW_TEST_SMTP_PASSWORD"},
        sender="linewarden@plant-a.example",
        to=["support@acme.example"],
    )
    sink = make_sink(config)
    assert isinstance(sink, EmailTicketSink)
    return sink


async def test_the_ticket_arrives_over_starttls_with_its_id_in_the_subject(smtp, monkeypatch):
    inbox, port, ca = smtp
    sink = _sink(port, ca, monkeypatch)
    t = ticket()
    ref = await sink.create(t)
    await sink.resolve(ref, t, "Restored at 07:10")
    await sink.aclose()

    created, resolved = inbox.messages
    assert inbox.recipients[0] == ["support@acme.example"]
    assert created["Subject"].startswith("[LW inc-7f3a] S2 line3-plc DOWN")
    assert created["Message-ID"] == ref.id == "<created.inc-7f3a@plant-a.example>"
    assert "The line 3 PLC stopped answering" in created.get_payload()
    assert "[LW inc-7f3a]" in resolved["Subject"] and resolved["In-Reply-To"] == ref.id


async def test_a_wrong_password_is_rejected(smtp, monkeypatch):
    inbox, port, ca = smtp
    sink = _sink(port, ca, monkeypatch, password="wrong")
    with pytest.raises(TicketRejected, match="535"):
        await sink.create(ticket())
    assert inbox.messages == []
