"""The e-mail sink against a real SMTP server (aiosmtpd) that requires STARTTLS before AUTH."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from collector.ticketing.email import EmailTicketSink
from collector.ticketing.registry import make_sink
from linewarden.config.contract import EmailSink
from linewarden.errors import TicketRejected
from tests.fakes.smtp import FakeSmtp
from tests.fakes.tickets import ticket

USER, PASSWORD = "linewarden", "smtp-pass"


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    server = FakeSmtp(USER, PASSWORD).start()
    yield server
    server.stop()


def _sink(smtp: FakeSmtp, monkeypatch: pytest.MonkeyPatch, password: str = PASSWORD) -> EmailTicketSink:
    monkeypatch.setenv("LW_TEST_SMTP_PASSWORD", password)
    config = EmailSink(
        kind="email",
        host=smtp.host,
        port=smtp.port,
        ca_file=smtp.ca_file,
        username=USER,
        password={"env": "LW_TEST_SMTP_PASSWORD"},
        sender="linewarden@plant-a.example",
        to=["support@acme.example"],
    )
    sink = make_sink(config)
    assert isinstance(sink, EmailTicketSink)
    return sink


async def test_the_ticket_arrives_over_starttls_with_its_id_in_the_subject(smtp, monkeypatch):
    sink = _sink(smtp, monkeypatch)
    t = ticket()
    ref = await sink.create(t)
    await sink.resolve(ref, t, "Restored at 07:10")
    await sink.aclose()

    created, resolved = smtp.messages
    assert smtp.recipients[0] == ["support@acme.example"]
    assert created["Subject"].startswith("[LW inc-7f3a] S2 line3-plc DOWN")
    assert created["Message-ID"] == ref.id == "<created.inc-7f3a@plant-a.example>"
    assert "The line 3 PLC stopped answering" in created.get_payload()
    assert "[LW inc-7f3a]" in resolved["Subject"] and resolved["In-Reply-To"] == ref.id


async def test_a_wrong_password_is_rejected(smtp, monkeypatch):
    sink = _sink(smtp, monkeypatch, password="wrong")
    with pytest.raises(TicketRejected, match="535"):
        await sink.create(ticket())
    assert smtp.messages == []
