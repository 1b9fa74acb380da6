"""The webhook sink against a receiver that checks the signature and the idempotency key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from collector.ticketing.registry import make_sink
from collector.ticketing.webhook import WebhookTicketSink
from linewarden.config.contract import WebhookSink
from linewarden.domain import Severity
from linewarden.errors import TicketRejected
from tests.fakes.tickets import ticket
from tests.fakes.webhook import FakeWebhookReceiver

SECRET = "s3cret-hmac-key"


@pytest.fixture
def receiver() -> Iterator[FakeWebhookReceiver]:
    fake = FakeWebhookReceiver(SECRET).start()
    yield fake
    fake.stop()


def _sink(receiver: FakeWebhookReceiver, monkeypatch: pytest.MonkeyPatch, secret: str = SECRET) -> WebhookTicketSink:
    monkeypatch.setenv("LW_TEST_WEBHOOK_SECRET", secret)
    config = WebhookSink(kind="webhook", url=receiver.url + receiver.path, secret={"env": "LW_TEST_WEBHOOK_SECRET"})
    sink = make_sink(config)
    assert isinstance(sink, WebhookTicketSink)
    return sink


async def test_every_step_is_signed_and_accepted(receiver, monkeypatch):
    sink = _sink(receiver, monkeypatch)
    t = ticket()
    ref = await sink.create(t)
    await sink.update(ref, ticket(severity=Severity.S1))
    await sink.comment(ref, t, "Reminder: no response after 48h")
    await sink.resolve(ref, t, "restored at 07:10")
    await sink.aclose()

    assert receiver.rejected == []
    assert ref.id == "WH-1" and ref.url is not None
    events = receiver.tickets["inc-7f3a"]["events"]
    assert [e["event"] for e in events] == ["ticket.created", "ticket.updated", "ticket.commented", "ticket.resolved"]
    assert events[1]["severity"] == "S1" and events[2]["text"].startswith("Reminder")
    assert events[3]["ticket_ref"] == "WH-1"


async def test_a_repeated_create_is_the_same_ticket(receiver, monkeypatch):
    sink = _sink(receiver, monkeypatch)
    first = await sink.create(ticket())
    second = await sink.create(ticket())
    await sink.aclose()
    assert first == second and len(receiver.tickets) == 1


async def test_a_wrong_secret_is_rejected(receiver, monkeypatch):
    sink = _sink(receiver, monkeypatch, secret="not-the-shared-secret")
    with pytest.raises(TicketRejected, match="401"):
        await sink.create(ticket())
    await sink.aclose()
    assert receiver.tickets == {} and [status for _, status in receiver.rejected] == [401]
