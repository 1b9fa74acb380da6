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
