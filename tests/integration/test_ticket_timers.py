"""Escalations, reminders and the RCA deadline under an injected clock, on a real SQLite store, with the vendor
told through the dispatch outbox (a fake webhook receiver)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from collector.audit import AuditLog
from collector.ticketing.dispatch import Dispatcher
from collector.ticketing.lifecycle import Lifecycle
from collector.ticketing.registry import make_sink
from collector.ticketing.timers import Timers
from linewarden.config.contract import WebhookSink
from linewarden.domain import Severity
from tests.fakes.tickets import open_db, ticket
from tests.integration.ticketing_helpers import FAST, book, contract, hook, sink_config

__all__ = ["hook"]  # the shared webhook-receiver fixture (ticketing_helpers)

BERLIN = ZoneInfo("Europe/Berlin")
CONTRACT = "acme-mes-2026"


def berlin(year: int, month: int, day: int, hour: int, minute: int) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=BERLIN).timestamp() * 1000)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


async def test_escalations_count_business_hours_across_a_weekend_and_reminders_every_48h(tmp_path, hook):
    escalation = [
        {"after": "response_target", "severities": ["S2"], "notify": ["acme-duty-manager"]},
        {"after": "2h", "severities": ["S2"], "notify": ["acme-duty-manager"],
         "notify_outside_coverage": ["acme-night"]},
    ]
    c = contract(CONTRACT, "acme", ["line3-plc"], sink_config("webhook", hook.url), escalation=escalation,
                 support={"tier": "business", "coverage": "business-hours-de",
                          "targets": {"S2": {"response": "4h", "resolution": "3d"}}})
    the_book = book(c)
    store = open_db(tmp_path / "collector.db")
    friday_4pm = berlin(2026, 5, 29, 16, 0)
    clock = Clock(friday_4pm)
    lifecycle = Lifecycle(store, the_book, clock, "here")
    sink = make_sink(WebhookSink.model_validate(sink_config("webhook", hook.url)))
    dispatcher = Dispatcher(store, {CONTRACT: sink}, clock=clock, policy=FAST, on_recorded=lifecycle.on_recorded)
    timers = Timers(store, the_book, clock, "here")
    dispatcher.request_create(ticket("inc-w", severity=Severity.S2))
    await dispatcher.run_once()

    # Two hours of business time left on Friday, two more on Monday: the response level fires Monday 10:00.
    assert [t.name for t in timers.due(berlin(2026, 6, 1, 9, 59))] == ["escalation:S2:2", "reminder:1"]
    due_monday = [t for t in timers.due(berlin(2026, 6, 1, 10, 0)) if t.name == "escalation:S2:1"]
    assert due_monday and due_monday[0].due_at == berlin(2026, 6, 1, 10, 0)
    # The wall-clock level fires Friday 18:00, outside coverage: the night contact is called.
    clock.now = berlin(2026, 5, 29, 18, 0)
    assert timers.run_once() == 1
    assert timers.run_once() == 0  # fired once
    # The reminder fires 48 h after the ticket was raised, then schedules the next one.
    assert timers.due(friday_4pm + 48 * 3_600_000 - 1) == []
    clock.now = friday_4pm + 48 * 3_600_000
    assert timers.run_once() == 1
    clock.now = berlin(2026, 6, 1, 10, 0)
    assert timers.run_once() == 1
    entries = [e for e in AuditLog(store).entries() if e.action in ("ticket.escalated", "ticket.reminder")]
    assert [(e.action, e.details.get("contacts")) for e in entries] == [
        ("ticket.escalated", ["acme-night"]),
        ("ticket.reminder", None),
        ("ticket.escalated", ["acme-duty-manager"]),
    ]
    next_reminder = [t.name for t in timers.due(friday_4pm + 96 * 3_600_000)]
    assert next_reminder == ["reminder:2"]
    while await dispatcher.run_once():
        pass
    await sink.aclose()
    comments = [e["text"] for e in hook.tickets["inc-w"]["events"] if e["event"] == "ticket.commented"]
    assert len(comments) == 3 and "acme-night" in comments[0]


async def test_acknowledging_stops_the_response_escalation_and_survives_a_restart(tmp_path, hook):
    escalation = [{"after": "response_target", "severities": ["S1"], "notify": ["acme-duty-manager"]}]
    c = contract(CONTRACT, "acme", ["line3-plc"], sink_config("webhook", hook.url), escalation=escalation)
    the_book = book(c)
    db = tmp_path / "collector.db"
    store = open_db(db)
    clock = Clock(berlin(2026, 5, 29, 16, 0))
    lifecycle = Lifecycle(store, the_book, clock, "here")
    sink = make_sink(WebhookSink.model_validate(sink_config("webhook", hook.url)))
    dispatcher = Dispatcher(store, {CONTRACT: sink}, clock=clock, policy=FAST, on_recorded=lifecycle.on_recorded)
    dispatcher.request_create(ticket("inc-a", severity=Severity.S1))
    await dispatcher.run_once()
    await sink.aclose()
    store.close()

    reopened = open_db(db)  # a restarted collector finds its timers in the store
    timers = Timers(reopened, the_book, clock, "here")
    assert [t.name for t in timers.due(clock.now + 3_600_000)] == ["escalation:S1:1"]
    Lifecycle(reopened, the_book, clock, "here").acknowledge("inc-a", CONTRACT, "vendor:acme", "10.0.0.9")
    assert timers.due(clock.now + 3_600_000) == []
