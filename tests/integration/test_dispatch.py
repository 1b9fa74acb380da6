"""The dispatch outbox against fake vendors: one vendor ticket per incident through duplicates, timeouts and
a crash between the vendor's answer and our record."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from collector.audit import AuditLog
from collector.ticketing.base import TicketSink, VendorRef
from collector.ticketing.dispatch import Dispatch, Dispatcher, RetryPolicy
from collector.ticketing.registry import make_sink
from linewarden.config.contract import JiraSink, PagerDutySink, ServiceNowSink, WebhookSink
from linewarden.domain import Severity
from linewarden.errors import StorageFull
from simulators.broker import free_port
from tests.fakes.jira import FakeJira
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.server import FakeVendor
from tests.fakes.servicenow import FakeServiceNow
from tests.fakes.tickets import T0, open_db, ticket
from tests.fakes.webhook import FakeWebhookReceiver

FAST = RetryPolicy(attempt_timeout_s=0.5, attempts=3, run_budget_s=5, wait_multiplier_s=0.01, wait_max_s=0.05, runs=3)
CONTRACT = "acme-mes-2026"


@dataclass
class Vendor:
    fake: FakeVendor
    sink: TicketSink
    tickets: Callable[[], int]  # how many tickets the vendor holds


def _vendor(kind: str, monkeypatch: pytest.MonkeyPatch) -> Vendor:
    monkeypatch.setenv("LW_TEST_SECRET", "0123456789abcdef0123456789abcdef")
    secret = {"env": "LW_TEST_SECRET"}
    if kind == "jira":
        jira = FakeJira("lw@plant-a.example", "0123456789abcdef0123456789abcdef").start()
        config = JiraSink(
            kind="jira", base_url=jira.url, user="lw@plant-a.example", api_token=secret, project_key="PLCSUP"
        )
        return Vendor(jira, make_sink(config), lambda: len(jira.issues))
    if kind == "servicenow":
        snow = FakeServiceNow("lw", "0123456789abcdef0123456789abcdef").start()
        config_sn = ServiceNowSink(kind="servicenow", instance_url=snow.url, user="lw", password=secret)
        return Vendor(snow, make_sink(config_sn), lambda: len(snow.incidents))
    if kind == "webhook":
        hook = FakeWebhookReceiver("0123456789abcdef0123456789abcdef").start()
        config_wh = WebhookSink(kind="webhook", url=hook.url + hook.path, secret=secret)
        return Vendor(hook, make_sink(config_wh), lambda: len(hook.tickets))
    pd = FakePagerDuty("0123456789abcdef0123456789abcdef").start()
    config_pd = PagerDutySink(kind="pagerduty", events_url=pd.url + "/v2/enqueue", routing_key=secret)
    return Vendor(pd, make_sink(config_pd), lambda: pd.alerts_created)


@pytest.fixture(params=["jira", "servicenow", "webhook", "pagerduty"])
def vendor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Vendor]:
    v = _vendor(request.param, monkeypatch)
    yield v
    v.fake.stop()


@pytest.fixture
def jira(monkeypatch: pytest.MonkeyPatch) -> Iterator[Vendor]:
    v = _vendor("jira", monkeypatch)
    yield v
    v.fake.stop()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def _dispatcher(path: Path, vendor: Vendor, clock: Clock, cls: type[Dispatcher] = Dispatcher) -> Dispatcher:
    return cls(open_db(path), {CONTRACT: vendor.sink}, clock=clock, policy=FAST, origin="10.0.0.5")


async def test_a_duplicate_incident_raises_one_ticket(tmp_path, jira):
    clock = Clock()
    d = _dispatcher(tmp_path / "c.db", jira, clock)
    assert d.request_create(ticket()) is True
    assert d.request_create(ticket()) is False
    assert await d.run_once() == 1
    assert d.request_create(ticket()) is False
    assert await d.run_once() == 0
    await jira.sink.aclose()
    assert jira.tickets() == 1
    record = d.ticket("inc-7f3a", CONTRACT)
    assert record is not None and record.ref.id == "PLCSUP-1" and record.state == "open"


async def test_a_create_whose_answer_times_out_is_not_raised_twice(tmp_path, vendor):
    clock = Clock()
    d = _dispatcher(tmp_path / "c.db", vendor, clock)
    vendor.fake.stall_next(1)  # the vendor creates the ticket, but its answer never comes back in time
    d.request_create(ticket())
    await d.run_once()
    await vendor.sink.aclose()
    assert vendor.tickets() == 1
    assert [x.state for x in d.dispatches("inc-7f3a", CONTRACT)] == ["done"]
    assert d.ticket("inc-7f3a", CONTRACT) is not None


class Crash(BaseException):
    """Stands for the collector being killed: not an error any handler may catch."""


class CrashBeforeRecord(Dispatcher):
    def _record(self, row: Dispatch, ref: VendorRef | None) -> None:
        raise Crash


async def test_a_crash_between_the_vendor_and_our_record_still_gives_one_ticket(tmp_path, vendor):
    clock = Clock()
    db = tmp_path / "c.db"
    crashing = _dispatcher(db, vendor, clock, CrashBeforeRecord)
    crashing.request_create(ticket())
    with pytest.raises(Crash):
        await crashing.run_once()
    assert vendor.tickets() == 1
    assert [x.state for x in crashing.dispatches("inc-7f3a", CONTRACT)] == ["in_flight"]

    restarted = _dispatcher(db, vendor, clock)
    assert await restarted.run_once() == 0  # the dead process's claim still holds
    clock.now += FAST.lease_ms
    assert await restarted.run_once() == 1
    await vendor.sink.aclose()
    assert vendor.tickets() == 1
    assert [x.state for x in restarted.dispatches("inc-7f3a", CONTRACT)] == ["done"]


class FullWhenRecording(Dispatcher):
    """The store is full (or away) the first two times the vendor's answer is to be recorded."""

    RECORD_RETRY_FIRST_S = 0.01
    refusals = 2

    def _record(self, row: Dispatch, ref: VendorRef | None) -> None:
        if self.refusals:
            self.refusals -= 1
            raise StorageFull("database or disk is full")
        super()._record(row, ref)


async def test_an_answer_the_full_store_could_not_record_is_recorded_once_space_returns(tmp_path, jira):
    """Not left to the claim's lease (two minutes by default, and the ticket's raise time with it)."""
    clock = Clock()
    d = _dispatcher(tmp_path / "c.db", jira, clock, FullWhenRecording)
    d.request_create(ticket())
    assert await d.run_once() == 1
    await jira.sink.aclose()
    assert [x.state for x in d.dispatches("inc-7f3a", CONTRACT)] == ["done"]
    record = d.ticket("inc-7f3a", CONTRACT)
    assert record is not None and jira.tickets() == 1


async def test_steps_of_a_ticket_run_in_order_and_land_in_the_audit_log(tmp_path, jira):
    clock = Clock()
    d = _dispatcher(tmp_path / "c.db", jira, clock)
    assert d.request_update(ticket(severity=Severity.S1)) is False  # nothing raised yet
    d.request_create(ticket())
    d.request_update(ticket(severity=Severity.S1))
    d.request_update(ticket(severity=Severity.S3))  # never lowered
    d.request_comment(ticket(), "Reminder: no response after 48h", dedup="reminder:1")
    d.request_resolve(ticket(), "Restored at 07:10")
    while await d.run_once():
        clock.now += 1
    await jira.sink.aclose()

    assert isinstance(jira.fake, FakeJira)
    issue = jira.fake.issues["PLCSUP-1"]
    assert issue["fields"]["priority"] == {"name": "Highest"} and issue["status"] == "resolved"
    record = d.ticket("inc-7f3a", CONTRACT)
    assert record is not None and record.severity is Severity.S1 and record.state == "resolved"
    log = AuditLog(open_db(tmp_path / "c.db"))
    actions = [(e.action, e.origin) for e in log.entries()]
    assert actions == [
        ("ticket.raised", "10.0.0.5"),
        ("ticket.severity_raised", "10.0.0.5"),
        ("ticket.commented", "10.0.0.5"),
        ("ticket.resolved", "10.0.0.5"),
    ]
    assert log.verify() is None


async def test_a_rejected_create_fails_its_ticket_for_good(tmp_path, monkeypatch):
    jira = _vendor("jira", monkeypatch)
    monkeypatch.setenv("LW_TEST_SECRET", "not-the-token")
    sink = make_sink(
        JiraSink(
            kind="jira", base_url=jira.fake.url, user="x", api_token={"env": "LW_TEST_SECRET"}, project_key="PLCSUP"
        )
    )
    clock = Clock()
    d = Dispatcher(open_db(tmp_path / "c.db"), {CONTRACT: sink}, clock=clock, policy=FAST)
    d.request_create(ticket())
    d.request_resolve(ticket(), "")
    await d.run_once()
    await sink.aclose()
    jira.fake.stop()
    states = [(x.state, "401" in x.last_error) for x in d.dispatches("inc-7f3a", CONTRACT)]
    assert states == [("failed", True), ("failed", True)]
    assert [e.action for e in AuditLog(open_db(tmp_path / "c.db")).entries()] == ["ticket.failed"]


async def test_an_unreachable_vendor_is_retried_later_then_given_up(tmp_path, monkeypatch):
    monkeypatch.setenv("LW_TEST_SECRET", "k")
    dead_url = f"http://127.0.0.1:{free_port()}/hook"
    sink = make_sink(WebhookSink(kind="webhook", url=dead_url, secret={"env": "LW_TEST_SECRET"}))
    clock = Clock()
    d = Dispatcher(open_db(tmp_path / "c.db"), {CONTRACT: sink}, clock=clock, policy=FAST)
    d.request_create(ticket())
    await d.run_once()
    (row,) = d.dispatches("inc-7f3a", CONTRACT)
    assert (
        row.state == "pending" and row.next_attempt_at == T0 + FAST.backoff_min_ms and "ConnectError" in row.last_error
    )
    assert await d.run_once() == 0  # not due yet
    for _ in range(FAST.runs - 1):
        clock.now += FAST.backoff_max_ms
        await d.run_once()
    await sink.aclose()
    (row,) = d.dispatches("inc-7f3a", CONTRACT)
    assert row.state == "failed" and row.attempts == FAST.runs
    actions = [e.action for e in AuditLog(open_db(tmp_path / "c.db")).entries()]
    assert actions == ["ticket.deferred"] * (FAST.runs - 1) + ["ticket.failed"]
