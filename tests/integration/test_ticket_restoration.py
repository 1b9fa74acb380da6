"""The vendor always hears of a restoration, whatever order the ticket and the restore are recorded in, and a
create cut off by a collector crash is sent again as soon as the collector is back (real Mosquitto, fake
vendors that record every request, a collector subprocess killed with SIGKILL)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from collector.audit import AuditLog
from collector.service import CollectorService, wall_clock_ms
from collector.store.sqlite import SqliteStore
from collector.ticketing.dispatch import RetryPolicy
from linewarden.book import ContractBook
from linewarden.config.base import BrokerConfig
from linewarden.domain import State
from linewarden.mqtt import MqttClient
from linewarden.wire import IncidentResolvedBody, IncidentResolvedEvent, birth_topic, encode, events_topic
from tests.fakes.jira import FakeJira
from tests.fakes.webhook import FakeWebhookReceiver
from tests.integration.collector_helpers import T0, batch, birth, incident_opened, state_change
from tests.integration.ticketing_helpers import SECRET, SECRET_ENV, book, collector_config, contract, sink_config
from tests.waiting import async_wait_until

SITE = "plant1"
CONTRACT = "acme-mes-2026"
HOUR = 3_600_000
# One long attempt: the stalled create stays in flight until the test lets the vendor answer.
PATIENT = RetryPolicy(attempt_timeout_s=30, attempts=1, run_budget_s=30, wait_max_s=0.1)
ESCALATION = [{"after": "resolution_target", "severities": ["S1"], "notify": ["acme-duty-manager"]}]
_names = itertools.count(1)

pytestmark = pytest.mark.broker


@pytest.fixture
async def agent(mosquitto: object) -> AsyncIterator[MqttClient]:
    host, port = mosquitto.host, mosquitto.port  # type: ignore[attr-defined]
    client = MqttClient(BrokerConfig(host=host, port=port), client_id=f"test-restore-{next(_names)}")
    await client.start()
    await async_wait_until(lambda: client.connected, what="agent connected")
    yield client
    await client.stop()


_born: set[int] = set()


async def _send(agent: MqttClient, events: list[object]) -> None:
    if id(agent) not in _born:  # the collector takes the agent's targets and assets from its birth
        _born.add(id(agent))
        await agent.publish(birth_topic(SITE, "agent-r"), encode(birth(SITE, "agent-r")))
    await agent.publish(events_topic(SITE, "agent-r"), encode(batch(SITE, "agent-r", events)))


def _resolved(seq: int, at: int, incident: str) -> IncidentResolvedEvent:
    return IncidentResolvedEvent(seq=seq, ts=at, body=IncidentResolvedBody(incident=incident, at=at))


async def _collector(
    mosquitto: object, data: Path, the_book: ContractBook, name: str, clock: Callable[[], int] = wall_clock_ms,
    policy: RetryPolicy = PATIENT,
) -> CollectorService:
    host, port = mosquitto.host, mosquitto.port  # type: ignore[attr-defined]
    store = SqliteStore(data / "collector.db")
    store.migrate()
    svc = CollectorService(collector_config(host, port, data, name), store, clock=clock, book=the_book,
                           dispatch_policy=policy, ticket_poll_s=0.05)
    await svc.start()
    await async_wait_until(lambda: svc.mqtt.connected, what="collector connected")
    return svc


async def _stop(svc: CollectorService) -> None:
    await svc.stop()
    svc.store.close()


async def test_a_restore_recorded_before_the_slow_create_still_reaches_the_vendor(
    mosquitto, agent, tmp_path, monkeypatch
):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    hook = FakeWebhookReceiver(SECRET).start()
    hook.stall_next(1)  # the vendor takes the create but answers only when the test says so
    shift = [0]
    the_book = book(contract(CONTRACT, "acme", ["line3-plc"], sink_config("webhook", hook.url),
                             escalation=ESCALATION))
    svc = await _collector(mosquitto, tmp_path, the_book, "c-restore", clock=lambda: wall_clock_ms() + shift[0])
    try:
        t0 = wall_clock_ms()  # the outage happens now: its RCA is due in five business days, not overdue
        await _send(agent, [state_change(1, t0), incident_opened(2, t0 + 1000, incident="inc-slow")])
        await async_wait_until(lambda: "inc-slow" in hook.tickets, what="create reached the vendor")
        await _send(agent, [state_change(3, t0 + 2000, to=State.UP, frm=State.DOWN),
                            _resolved(4, t0 + 3000, "inc-slow")])
        await async_wait_until(
            lambda: [i for i in svc.store.table_rows("incidents") if i["resolved_at"] is not None],
            what="restoration recorded",
        )
        assert svc.store.table_rows("tickets") == []  # the restore came first
        hook.release()
        await async_wait_until(lambda: len(hook.tickets["inc-slow"]["events"]) >= 2, what="restored notice")
        events = hook.tickets["inc-slow"]["events"]
        assert [e["event"] for e in events] == ["ticket.created", "ticket.commented"]
        assert "restored" in events[1]["text"]
        creates = [r for r in hook.requests if r.headers.get("X-Linewarden-Event") == "ticket.created"]
        assert len(creates) == 1
        timers = {t["name"]: t for t in svc.store.table_rows("ticket_timers")}
        assert timers["rca"]["fired_at"] is None and timers["rca"]["cancelled_at"] is None
        assert timers["escalation:S1:1"]["cancelled_at"] is not None
        shift[0] = 5 * HOUR  # past the 4 h resolution target
        svc.timers.run_once()
        assert "ticket.escalated" not in [e.action for e in AuditLog(svc.store).entries()]
    finally:
        await _stop(svc)
        hook.stop()


async def test_a_resolution_level_due_after_an_unhandled_restoration_is_cancelled_not_fired(
    mosquitto, agent, tmp_path, monkeypatch
):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    hook = FakeWebhookReceiver(SECRET).start()
    shift = [0]
    the_book = book(contract(CONTRACT, "acme", ["line3-plc"], sink_config("webhook", hook.url),
                             escalation=ESCALATION))
    svc = await _collector(mosquitto, tmp_path, the_book, "c-moot", clock=lambda: wall_clock_ms() + shift[0])
    try:
        await _send(agent, [state_change(1, T0), incident_opened(2, T0 + 1000, incident="inc-moot")])
        await async_wait_until(lambda: svc.store.table_rows("tickets"), what="ticket recorded")
        # The edge's resolution is in the store, but the router has not handled it (as after a crash in between).
        with svc.store.transaction() as tx:
            tx.sql.execute("UPDATE incidents SET resolved_at = ? WHERE id = 'inc-moot'", (wall_clock_ms(),))
        shift[0] = 5 * HOUR
        assert svc.timers.run_once() == 0
        (level,) = [t for t in svc.store.table_rows("ticket_timers") if t["kind"] == "escalation"]
        assert level["fired_at"] is None and level["cancelled_at"] is not None
    finally:
        await _stop(svc)
        hook.stop()


async def test_a_create_cut_off_by_a_crash_is_sent_again_as_soon_as_the_collector_is_back_and_hears_the_restore(
    mosquitto, agent, tmp_path, monkeypatch
):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    jira = FakeJira("lw@plant-a.example", SECRET).start()
    jira.stall_next(1)  # Jira creates the issue but holds its answer: the collector is killed while it waits
    db = tmp_path / "collector.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.ticketing_collector", str(db), str(mosquitto.port), jira.url],
        env={**os.environ, SECRET_ENV: SECRET}, cwd=Path(__file__).parents[2], stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "log").open("w"),
    )
    try:
        await async_wait_until(lambda: (tmp_path / "ready").exists(), timeout=20, what="collector started")
        await _send(agent, [incident_opened(1, T0, incident="inc-crash")])
        await async_wait_until(lambda: len(jira.issues) == 1, timeout=20, what="issue created at Jira")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    jira.release()
    restarted_at = wall_clock_ms()
    # The agent's resolution was stored just before the crash, the ticket never recorded: restore first.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE incidents SET resolved_at = ? WHERE id = 'inc-crash'", (restarted_at,))
    # The same collector (its configured id, "killed"), started again with the real clock: its dead process's
    # claim on the create still has most of its lease to run.
    the_book = book(contract(CONTRACT, "acme", ["line3-plc"], sink_config("jira", jira.url), escalation=ESCALATION))
    svc = await _collector(mosquitto, tmp_path, the_book, "killed")
    try:
        await async_wait_until(lambda: svc.store.table_rows("tickets"), timeout=20, what="ticket recorded")
        assert len(jira.issues) == 1
        (reclaim,) = [e for e in AuditLog(svc.store).entries() if e.action == "ticket.reclaimed"]
        assert reclaim.details["lease_until"] > restarted_at  # taken back, not waited out
        [issue] = jira.issues.values()
        await async_wait_until(lambda: issue["comments"], timeout=20, what="restored notice at Jira")
        assert "restored" in json.dumps(issue["comments"])
        create, _restored_notice = svc.dispatcher.dispatches("inc-crash", CONTRACT)
        assert (create.action, create.state, create.attempts) == ("create", "done", 2)
        timers = {t["name"]: t for t in svc.store.table_rows("ticket_timers")}
        assert timers["rca"]["cancelled_at"] is None and timers["escalation:S1:1"]["cancelled_at"] is not None
    finally:
        await _stop(svc)
        jira.stop()
