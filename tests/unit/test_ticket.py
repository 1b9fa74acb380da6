"""Tickets built from incident_opened events, and their round trip through the outbox's JSON."""

from __future__ import annotations

from collector.ticketing.base import Link, Ticket, ticket_for_incident
from linewarden.domain import Criticality, Severity, State
from linewarden.wire import IncidentOpenedBody

T0 = 1_780_000_000_000


def test_an_incident_becomes_a_ticket_keyed_by_its_id():
    body = IncidentOpenedBody(
        incident="inc-7f3a",
        target="plc-1-opcua",
        asset="line3-plc",
        criticality=Criticality.CRITICAL,
        severity=Severity.S1,
        state=State.DOWN,
        reason="OPC UA session refused",
        in_production=True,
        opened_at=T0,
    )
    t = ticket_for_incident(body, "acme-mes-2026", "acme", (Link("dashboard", "http://c/incidents/inc-7f3a"),))
    assert (t.idempotency_key, t.asset, t.severity, t.opened_at) == ("inc-7f3a", "line3-plc", Severity.S1, T0)
    assert t.title == "S1 line3-plc DOWN: OPC UA session refused"
    assert "2026-05-28T" in t.description and "critical" in t.description
    assert Ticket.from_json(t.to_json()) == t


def test_a_site_link_incident_names_its_first_target():
    body = IncidentOpenedBody(
        incident="inc-9",
        kind="site_link",
        severity=Severity.S2,
        state=State.UNKNOWN,
        reason="agent silent",
        in_production=False,
        opened_at=T0,
        targets=["plc-1", "plc-2"],
    )
    t = ticket_for_incident(body, "acme-mes-2026", "acme")
    assert t.asset == "plc-1" and "plc-1, plc-2" in t.description and "not running" in t.description


def test_webhook_signature_verification_as_a_receiver_does_it() -> None:
    from collector.ticketing.webhook import signature, verify

    body, now = b'{"event": "ticket.created"}', 1_780_000_000_000
    header = signature("s3cret", now, body)
    assert verify("s3cret", header, body, now + 1000)
    assert not verify("s3cret", header, body + b" ", now), "body changed"
    assert not verify("other", header, body, now), "wrong secret"
    assert not verify("s3cret", header, body, now + 301_000), "replayed too late"
    assert not verify("s3cret", None, body, now) and not verify("s3cret", "t=x,v1=y", body, now)
