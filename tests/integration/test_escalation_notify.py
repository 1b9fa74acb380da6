"""Escalation that reaches people, end to end: a ticket raised on a Saturday night, its escalation level fires,
the vendor's night on-call engineer is paged (PagerDuty fake) and messaged (webhook fake), the plant's on-call
gets an e-mail (a real SMTP server with STARTTLS and AUTH); delivery, failure and acknowledgement are recorded
and shown with the ticket in the API; a real SQLite store, an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from collector.api.app import create_app
from collector.escalation.notifier import EscalationNotifier
from collector.store.base import Store
from collector.ticketing.dispatch import Dispatcher
from collector.ticketing.lifecycle import Lifecycle
from collector.ticketing.registry import make_sink
from collector.ticketing.timers import Timers
from collector.tokens import create_token
from linewarden.book import ContractBook
from linewarden.config.collector import EscalationConfig
from linewarden.config.contacts import ContactsConfig
from linewarden.domain import Severity
from linewarden.rota import Directory
from simulators.broker import free_port
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.smtp import FakeSmtp
from tests.fakes.tickets import ticket
from tests.fakes.webhook import FakeWebhookReceiver
from tests.integration.store_params import STORES, open_store_param
from tests.integration.ticketing_helpers import (
    BUSINESS_HOURS,
    FAST,
    SECRET,
    SECRET_ENV,
    SMTP_USER,
    contract,
    sink_config,
)

BERLIN = ZoneInfo("Europe/Berlin")
CONTRACT = "acme-mes-2026"
MIN = 60_000


def berlin(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=BERLIN).timestamp() * 1000)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    yield from open_store_param(request, tmp_path)


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeSmtp, FakeWebhookReceiver, FakePagerDuty]]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    smtp = FakeSmtp(SMTP_USER, SECRET).start()
    hook = FakeWebhookReceiver(SECRET).start()
    pager = FakePagerDuty(SECRET).start()
    yield smtp, hook, pager
    for fake in (hook, pager):
        fake.stop()
    smtp.stop()


def directory(hook: FakeWebhookReceiver) -> ContactsConfig:
    secret = {"env": SECRET_ENV}
    return ContactsConfig.model_validate({
        "contact": [
            {"id": "acme-desk", "name": "ACME desk", "party": "vendor:acme", "email": "desk@acme.example",
             "channels": ["email"]},
            {"id": "acme-night", "name": "Nadia Night", "party": "vendor:acme", "pagerduty_routing_key": secret,
             "webhook_url": hook.url + hook.path, "webhook_secret": secret, "channels": ["pagerduty", "webhook"]},
            {"id": "plant-it", "name": "Plant IT on call", "party": "plant:plant-a", "email": "it@plant-a.example",
             "channels": ["email"]},
            {"id": "plant-broken", "name": "Unreachable", "party": "plant:plant-a",
             "webhook_url": f"http://127.0.0.1:{free_port()}/hook", "webhook_secret": secret,
             "channels": ["webhook"]},
        ],
        "rota": [
            {"party": "vendor:acme", "level": 1, "shifts": [
                {"contacts": ["acme-desk"], "calendar": "business-hours-de", "when": "open"},
                {"contacts": ["acme-night"], "calendar": "business-hours-de", "when": "closed"}]},
            {"party": "plant:plant-a", "level": 1, "shifts": [{"contacts": ["plant-it"]}]},
        ],
    })


async def test_an_escalation_at_night_reaches_the_people_on_call_and_their_acknowledgement_is_recorded(
    tmp_path: Path, store: Store, fakes: tuple[FakeSmtp, FakeWebhookReceiver, FakePagerDuty]
) -> None:
    smtp, hook, pager = fakes
    escalation = [{"after": "1h", "severities": ["S1"],
                   "notify": ["on-call:vendor:1", "on-call:plant:1", "plant-broken", "on-call:plant:2"]}]
    c = contract(CONTRACT, "acme", ["line3-plc"], sink_config("webhook", hook.url), escalation=escalation)
    book = ContractBook({CONTRACT: c}, {"business-hours-de": BUSINESS_HOURS})
    with store.transaction() as tx:
        tx.sql.execute("INSERT INTO incidents (id, site, agent, kind, asset, targets) VALUES"
                       " ('inc-n', 'plant-a', 'a1', 'asset', 'line3-plc', '[]')")
    saturday_2am = berlin(2026, 6, 6, 2)
    clock = Clock(saturday_2am)
    lifecycle = Lifecycle(store, book, clock, "here")
    sink = make_sink(c.ticketing)  # type: ignore[arg-type]
    dispatcher = Dispatcher(store, {CONTRACT: sink}, clock=clock, policy=FAST, on_recorded=lifecycle.on_recorded)
    timers = Timers(store, book, clock, "here")
    config = EscalationConfig.model_validate({
        "email": {"host": smtp.host, "port": smtp.port, "ca_file": str(smtp.ca_file), "username": SMTP_USER,
                  "password": {"env": SECRET_ENV}, "sender": "linewarden@plant-a.example"},
        "pagerduty_events_url": pager.url + "/v2/enqueue", "attempts": 2, "retry_wait": "1m",
    })
    notifier = EscalationNotifier(store, book, Directory(directory(hook), book.calendars), config, clock, "here")
    dispatcher.request_create(ticket("inc-n", severity=Severity.S1))
    await dispatcher.run_once()
    assert await notifier.run_once() == 0  # nothing fired yet

    clock.now = saturday_2am + 60 * MIN
    assert timers.run_once() == 1
    assert await notifier.run_once() == 3  # PagerDuty and webhook to the night engineer, e-mail to plant IT
    assert len(pager.alerts) == 1 and next(iter(pager.alerts)).startswith("inc-n-esc-")
    created = [e for t in hook.tickets.values() for e in t["events"] if e["event"] == "ticket.created"]
    assert [e["title"].startswith("Escalation level 1") for e in created if e["idempotency_key"] != "inc-n"] == [True]
    assert smtp.recipients == [["it@plant-a.example"]]
    assert "Plant IT on call" in str(smtp.messages[0].get_payload())

    # The unreachable contact is tried again after retry_wait, then recorded failed; a rota that does not
    # exist is recorded as reaching nobody.
    clock.now += 2 * MIN
    assert await notifier.run_once() == 0
    with store.reader() as sql:
        listed = sql.query("SELECT * FROM escalation_notifications ORDER BY id")
    rows = {(r["contact_id"] or r["entry"], r["channel"]): r for r in listed}
    assert (rows["plant-broken", "webhook"]["state"], rows["plant-broken", "webhook"]["attempts"]) == ("failed", 2)
    assert rows["on-call:plant:2", "none"]["state"] == "unresolved"
    assert await notifier.run_once() == 0  # planned once, sent once

    token, _ = create_token(store, "vendor", "acme", "night", clock.now, "admin", "here")
    app = create_app(store, lifecycle, clock, tmp_path / "rca", book=book)
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:
        paged = rows["acme-night", "pagerduty"]
        url = f"/tickets/{CONTRACT}/inc-n/escalations/{paged['id']}/acknowledge"
        acked = await api.post(url, headers=auth)
        assert acked.status_code == 200 and acked.json()["acknowledged_at"] == clock.now
        assert (await api.post(f"/tickets/{CONTRACT}/inc-n/escalations/999/acknowledge", headers=auth)).status_code \
            == 404
        shown = (await api.get(f"/tickets/{CONTRACT}/inc-n", headers=auth)).json()
    states = sorted((e["contact_id"], e["channel"], e["state"], e["acknowledged_at"] is not None)
                    for e in shown["escalations"])
    assert states == [("", "none", "unresolved", False), ("acme-night", "pagerduty", "sent", True),
                      ("acme-night", "webhook", "sent", False), ("plant-broken", "webhook", "failed", False),
                      ("plant-it", "email", "sent", False)]
    await sink.aclose()
