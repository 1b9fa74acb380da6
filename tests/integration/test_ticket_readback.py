"""Read-back from the vendor's own tool, end to end: tickets raised through the dispatcher in the Jira and
ServiceNow fakes (which check the read requests as the vendors document them), worked there by the vendor's
people, read back by the read-back round into the lifecycle, on a real SQLite store; and a hostile vendor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from collector.service import CollectorService
from collector.store.base import Store
from collector.ticketing.dispatch import Dispatcher
from collector.ticketing.jira_readback import JiraReader
from collector.ticketing.lifecycle import Lifecycle
from collector.ticketing.readback import TicketReadback, vendor_view
from collector.ticketing.registry import make_sink
from collector.ticketing.servicenow_readback import ServiceNowReader
from linewarden.config.contract import JiraSink, ServiceNowSink
from linewarden.domain import Severity
from tests.fakes.jira import FakeJira
from tests.fakes.server import Reply
from tests.fakes.servicenow import FakeServiceNow
from tests.fakes.tickets import T0, open_db, ticket
from tests.integration.store_params import STORES, open_store_param
from tests.integration.ticketing_helpers import (
    FAST,
    SECRET,
    SECRET_ENV,
    book,
    collector_config,
    contract,
    sink_config,
)

MIN = 60_000
SITE = "plant1"
ASSET = "line3-plc"
READBACK = {"every": "1m", "requests_per_minute": 600, "page_size": 1, "max_pages": 10}


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class Sleeps:
    """The reader's sleep: records what it was asked to wait, waits nothing (time is the test's)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    fake = FakeJira("lw@plant-a.example", SECRET).start()
    fake.now_ms = T0
    yield fake
    fake.stop()


@pytest.fixture
def snow() -> Iterator[FakeServiceNow]:
    fake = FakeServiceNow("lw", SECRET).start()
    fake.now_ms = T0
    yield fake
    fake.stop()


@pytest.fixture(params=STORES)
def any_store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Store]:
    yield from open_store_param(request, tmp_path)


def measured(store: Store, incident: str, state: str, at: int, seq: int) -> None:
    """The agent's incident and its asset's measured state, as ingest stores them."""
    with store.transaction() as tx:
        tx.sql.execute(
            "INSERT INTO incidents (id, site, agent, kind, asset, targets, opened_at) VALUES (?, ?, 'a1',"
            " 'asset', ?, '[]', ?) ON CONFLICT (id) DO NOTHING",
            (incident, SITE, ASSET, T0),
        )
        tx.sql.execute(
            "INSERT INTO state_changes (site, agent, epoch, seq, target, asset, from_state, to_state, reason, at)"
            " VALUES (?, 'a1', 'e1', ?, 'plc', ?, 'UP', ?, 'probe', ?)",
            (SITE, seq, ASSET, state, at),
        )


def ticket_row(store: Store, incident: str) -> dict[str, Any]:
    with store.reader() as sql:
        return sql.query("SELECT * FROM tickets WHERE incident_id = ?", (incident,))[0]


def records(store: Store, incident: str, kind: str) -> list[int]:
    with store.reader() as sql:
        rows = sql.query("SELECT at FROM ticket_records WHERE incident = ? AND kind = ? ORDER BY at", (incident, kind))
    return [int(r["at"]) for r in rows]


def setup(store: Store, sink: dict[str, Any], clock: Clock, *others: Any) -> tuple[Store, Dispatcher,
                                                                                    Lifecycle, dict[str, Any]]:
    contracts = [contract("acme-mes-2026", "acme", [ASSET], sink), *others]
    the_book = book(*contracts)
    lifecycle = Lifecycle(store, the_book, clock, "here")
    sinks = {c.contract.id: make_sink(c.ticketing) for c in contracts if c.ticketing is not None}
    dispatcher = Dispatcher(store, sinks, clock=clock, policy=FAST, on_recorded=lifecycle.on_recorded)
    return store, dispatcher, lifecycle, sinks


async def test_jira_acknowledgement_and_resolution_claims_come_back_into_the_lifecycle(any_store, jira):
    clock = Clock(T0)
    cfg = {**sink_config("jira", jira.url), "readback": READBACK}
    other = contract("beta-scada-2026", "beta", ["line9-hmi"], sink_config("jira", jira.url))
    store, dispatcher, lifecycle, sinks = setup(any_store, cfg, clock, other)
    measured(store, "inc-1", "DOWN", T0, 1)
    dispatcher.request_create(ticket("inc-1", severity=Severity.S1))
    dispatcher.request_create(ticket("inc-2", contract_id="acme-mes-2026"))
    dispatcher.request_create(ticket("inc-9", contract_id="beta-scada-2026", vendor="beta", asset="line9-hmi"))
    assert await dispatcher.run_once() == 3
    keys = {i: ticket_row(store, i)["vendor_id"] for i in ("inc-1", "inc-2", "inc-9")}
    sleeps = Sleeps()
    reader = JiraReader(JiraSink.model_validate(cfg), JiraSink.model_validate(cfg).readback, sleep=sleeps)  # type: ignore[arg-type]
    readback = TicketReadback(store, lifecycle, {"acme-mes-2026": reader}, clock, "here")

    # The vendor's engineer takes the ticket at +10 min and writes at +12; inc-2's comment claims a time a day
    # before the ticket existed. A 429 on the way is waited out as Retry-After says.
    jira.vendor_assign(keys["inc-1"], "Eva Engineer", T0 + 10 * MIN)
    jira.vendor_comment(keys["inc-1"], "Eva Engineer", "Looking at the PLC now.", T0 + 12 * MIN)
    jira.vendor_comment(keys["inc-2"], "Eva Engineer", "Seen.", T0 - 24 * 60 * MIN)
    jira.limit_next(1, "3")
    clock.now = T0 + 15 * MIN
    result = await readback.round("acme-mes-2026")
    assert sleeps.waits == [3.0]
    assert (result.read, result.applied, result.refused, result.error) == (3, 2, 1, "")
    assert readback.refusals("acme-mes-2026") == {"other_contract": 1}  # beta's ticket is not acme's to touch
    assert ticket_row(store, "inc-9")["vendor_status"] is None
    one = ticket_row(store, "inc-1")
    assert (one["phase"], one["acknowledged_at"], one["vendor_assignee"]) == ("acknowledged", T0 + 10 * MIN,
                                                                              "Eva Engineer")
    assert records(store, "inc-1", "ticket_acknowledged") == [T0 + 10 * MIN]
    assert ticket_row(store, "inc-2")["acknowledged_at"] == T0  # bounded: not before the ticket was raised
    with store.reader() as sql:
        view: dict[str, Any] = vendor_view(sql, "inc-1", "acme-mes-2026")
        pending = sql.query("SELECT name FROM ticket_timers WHERE incident_id = 'inc-1' AND cancelled_at IS NULL"
                            " AND fired_at IS NULL AND clock = 'response'")
    assert [c["body"] for c in view["comments"]] == ["Looking at the PLC now."]
    assert pending == []  # the response clock stopped
    # Paged one issue at a time, each next page asked with the token the previous answer gave.
    searches = [r.json() for r in jira.requests if r.path == "/rest/api/3/search/jql" and "updated" in r.json()["jql"]]
    assert [s.get("nextPageToken") is not None for s in searches[1:]] == [False, True, True]

    # The vendor resolves in Jira while linewarden still measures the PLC down: the claim is refused once,
    # the vendor told, and reading the same resolution again claims nothing more.
    jira.now_ms = clock.now = T0 + 30 * MIN
    jira.vendor_transition(keys["inc-1"], "resolved", "Eva Engineer")
    clock.now = T0 + 31 * MIN
    await readback.round("acme-mes-2026")
    assert ticket_row(store, "inc-1")["phase"] == "reopened"
    await dispatcher.run_once()
    ours = [c for c in jira.issues[keys["inc-1"]]["comments"] if c["author"].get("emailAddress")]
    assert "Resolution claim refused" in str(ours[-1]["body"])
    await readback.round("acme-mes-2026")
    assert len(records(store, "inc-1", "resolution_claimed")) == 1

    # Measured up; the vendor reopens and resolves again: verified, closed, resolved at the vendor once.
    measured(store, "inc-1", "UP", T0 + 40 * MIN, 2)
    jira.vendor_transition(keys["inc-1"], "in_progress", "Eva Engineer", T0 + 41 * MIN)
    jira.vendor_transition(keys["inc-1"], "resolved", "Eva Engineer", T0 + 45 * MIN)
    clock.now = T0 + 46 * MIN
    result = await readback.round("acme-mes-2026")
    assert ticket_row(store, "inc-1")["phase"] == "closed"
    assert len(records(store, "inc-1", "resolution_claimed")) == 2
    assert result.cursor_ms == T0 + 45 * MIN
    await dispatcher.run_once()
    assert [d.state for d in dispatcher.dispatches("inc-1", "acme-mes-2026")][-1] == "done"
    await readback.round("acme-mes-2026")  # linewarden's own resolve read back: closed stays closed
    assert len(records(store, "inc-1", "resolution_claimed")) == 2
    await readback.aclose()
    for sink in sinks.values():
        await sink.aclose()


async def test_the_collector_reads_back_each_contract_whose_sink_asks_for_it(tmp_path, jira, snow):
    with_readback = contract("acme-mes-2026", "acme", [ASSET], {**sink_config("jira", jira.url), "readback": READBACK})
    without = contract("beta-scada-2026", "beta", ["hmi"], sink_config("servicenow", snow.url))
    svc = CollectorService(collector_config("127.0.0.1", 1, tmp_path, "c1"), open_db(tmp_path / "c.db"),
                           book=book(with_readback, without))
    assert svc.readback.contracts == ["acme-mes-2026"]
    await svc.readback.aclose()
    for sink in svc.sinks.values():
        await sink.aclose()


async def test_servicenow_work_start_comments_and_resolution_are_read_back(tmp_path, snow):
    clock = Clock(T0)
    cfg = {**sink_config("servicenow", snow.url), "readback": READBACK}
    store, dispatcher, lifecycle, sinks = setup(open_db(tmp_path / "collector.db"), cfg, clock)
    measured(store, "inc-5", "DOWN", T0, 1)
    dispatcher.request_create(ticket("inc-5"))
    dispatcher.request_create(ticket("inc-6"))
    await dispatcher.run_once()
    sys_id = ticket_row(store, "inc-5")["vendor_id"]
    parsed = ServiceNowSink.model_validate(cfg)
    assert parsed.readback is not None
    reader = ServiceNowReader(parsed, parsed.readback, sleep=Sleeps())
    readback = TicketReadback(store, lifecycle, {"acme-mes-2026": reader}, clock, "here")

    snow.vendor_state(sys_id, "2", T0 + 7 * MIN)
    snow.vendor_comment(sys_id, "eva.engineer", "On it.", T0 + 8 * MIN)
    snow.vendor_comment(sys_id, "lw", "a note of ours", T0 + 9 * MIN)
    measured(store, "inc-5", "UP", T0 + 20 * MIN, 2)
    snow.vendor_state(sys_id, "6", T0 + 25 * MIN, notes="Replaced the PLC's comms module")
    clock.now = T0 + 26 * MIN
    result = await readback.round("acme-mes-2026")
    assert (result.applied, result.refused, result.error) == (2, 0, "")
    row = ticket_row(store, "inc-5")
    assert (row["acknowledged_at"], row["phase"], row["vendor_status"]) == (T0 + 7 * MIN, "closed", "Resolved")
    assert ticket_row(store, "inc-6")["acknowledged_at"] is None  # untouched at the vendor: not answered
    with store.reader() as sql:
        comments: Any = vendor_view(sql, "inc-5", "acme-mes-2026")["comments"]
    assert [(c["body"], c["ours"]) for c in comments] == [("On it.", False), ("a note of ours", True)]
    listing = [r.query for r in snow.requests if r.method == "GET" and r.path.endswith("/incident")
               and "sys_updated_on" in str(r.query)]
    assert [q["sysparm_offset"] for q in listing] == [["0"], ["1"]]
    assert all(q["sysparm_query"][0].startswith("correlation_display=linewarden^sys_updated_on>=") for q in listing)
    await readback.aclose()
    for sink in sinks.values():
        await sink.aclose()


async def test_a_hostile_vendor_is_refused_and_counted_and_the_loop_goes_on(tmp_path, jira, snow):
    clock = Clock(T0 + 5 * MIN)
    cfg = {**sink_config("jira", jira.url), "readback": {**READBACK, "page_size": 50,
                                                         "max_response_bytes": 20_000}}
    store, dispatcher, lifecycle, sinks = setup(open_db(tmp_path / "collector.db"), cfg, clock)
    dispatcher.request_create(ticket("inc-1"))
    await dispatcher.run_once()
    key = ticket_row(store, "inc-1")["vendor_id"]
    parsed = JiraSink.model_validate(cfg)
    assert parsed.readback is not None
    reader = JiraReader(parsed, parsed.readback, sleep=Sleeps())
    readback = TicketReadback(store, lifecycle, {"acme-mes-2026": reader}, clock, "here")
    now = "2026-05-28T21:00:00.000+0000"
    good = {"status": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}}, "updated": now,
            "labels": ["linewarden-inc-1"], "assignee": None}
    answers: list[Reply] = [
        Reply(200, {"issues": [
            {"key": "PLCSUP-99", "fields": good},                                  # not a ticket of ours
            {"key": key, "fields": {**good, "labels": ["linewarden-inc-other"]}},  # someone else's incident
            {"key": key, "fields": {"status": "?"}},                               # malformed
            {"fields": good},                                                      # no key
            "a string",
        ], "isLast": True}),
        Reply(200, {"issues": [{"key": key, "fields": {**good, "comment": {"comments": [{"x": 1}] * 2000}}}]}),
        Reply(200, "not a dict"),
        Reply(500, {"errorMessages": ["boom"]}),
    ]
    jira.search_reply = lambda body: answers.pop(0)
    results = [await readback.round("acme-mes-2026") for _ in range(4)]
    assert readback.refusals("acme-mes-2026") == {"unknown_ticket": 1, "incident_mismatch": 1, "malformed": 3}
    assert "larger than 20000 bytes" in results[1].error
    assert "no issues list" in results[2].error and "HTTP 500" in results[3].error
    assert ticket_row(store, "inc-1")["acknowledged_at"] is None  # nothing hostile was applied
    assert results[-1].cursor_ms == results[0].cursor_ms  # no answer moved the cursor
    # An answer dated in the future stops the response clock at most now, and moves the cursor at most to now.
    jira.search_reply = lambda body: Reply(200, {"issues": [{"key": key, "fields": {
        **good, "updated": "2031-01-01T00:00:00.000+0000"}}], "isLast": True})
    result = await readback.round("acme-mes-2026")
    assert ticket_row(store, "inc-1")["acknowledged_at"] == clock.now and result.cursor_ms == clock.now

    # ServiceNow answering garbage or rate limiting for longer than allowed ends the round, not the loop.
    snow_cfg = {**sink_config("servicenow", snow.url), "readback": {**READBACK, "page_size": 2,
                                                                    "max_retry_after": "10s"}}
    snow_parsed = ServiceNowSink.model_validate(snow_cfg)
    assert snow_parsed.readback is not None
    snow_reader = ServiceNowReader(snow_parsed, snow_parsed.readback, sleep=Sleeps())
    snow_back = TicketReadback(store, lifecycle, {"acme-mes-2026": snow_reader}, clock, "here")
    snow.limit_next(1, "3600")
    assert "Retry-After 3600" in (await snow_back.round("acme-mes-2026")).error
    snow.table_reply = lambda query: Reply(200, {"result": [{"sys_id": "x", "state": "6"}, 7]})
    refused = await snow_back.round("acme-mes-2026")
    assert refused.refused == 2 and "same records" in refused.error  # and it ignored sysparm_offset
    snow.table_reply = lambda query: Reply(200, {"result": [{"sys_id": "x"}] * 3})  # more than it asked for
    assert "at most 2 records" in (await snow_back.round("acme-mes-2026")).error
    await readback.aclose()
    await snow_back.aclose()
    for sink in sinks.values():
        await sink.aclose()
