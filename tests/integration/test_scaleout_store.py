"""Several collectors on one PostgreSQL, each its own connection: migrations, the audit chain, acks, ticket
claims and timers stay right when two of them write at once (docs/scale-out.md).

Where an interleaving matters it is forced, not hoped for: one store holds a lock inside an open transaction,
the other's statement is seen waiting in pg_stat_activity (or seen not waiting: SKIP LOCKED), then the first
commits."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from collector.audit import AuditLog
from collector.ingest import Ingest
from collector.store.postgres import PostgresStore
from collector.ticketing.base import VendorRef
from collector.ticketing.dispatch import Dispatch, Dispatcher, RetryPolicy
from collector.ticketing.registry import make_sink
from collector.ticketing.timers import Timers
from linewarden.book import ContractBook
from linewarden.config.collector import LivenessConfig
from linewarden.config.contract import WebhookSink
from linewarden.domain import State
from linewarden.wire import Ack, EventBatch, birth_topic, decode, encode, events_topic
from tests.fakes.tickets import T0, ticket
from tests.fakes.webhook import FakeWebhookReceiver
from tests.integration.collector_helpers import batch, birth, heartbeats, state_change
from tests.integration.ticketing_helpers import hook
from tests.waiting import wait_until

__all__ = ["hook"]  # the shared webhook-receiver fixture (ticketing_helpers)

pytestmark = pytest.mark.postgres

SITE, AGENT = "plant1", "edge-1"
CONTRACT = "acme-mes-2026"
SECRET = "0123456789abcdef0123456789abcdef"
WAIT_S = 60.0  # generous: the machine may be busy


@dataclass
class Shared:
    url: str
    schema: str
    stores: list[PostgresStore]

    def open(self) -> PostgresStore:
        """One collector's connection, named after the test's schema (to find its lock waits)."""
        joiner = "&" if "?" in self.url else "?"
        store = PostgresStore(f"{self.url}{joiner}application_name={self.schema}", schema=self.schema)
        self.stores.append(store)
        return store

    def waiting_on_a_lock(self) -> int:
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
                (self.schema,),
            ).fetchone()
        return int(row[0]) if row else 0


@pytest.fixture
def shared(postgres_url: str) -> Iterator[Shared]:
    schema = f"lw_scale_{uuid.uuid4().hex[:12]}"
    s = Shared(postgres_url, schema, [])
    yield s
    for store in s.stores:
        store.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _threads(count: int, work: Callable[[int], Any]) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # reported by the test, not lost in a thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    assert not any(t.is_alive() for t in threads), "a collector's thread is stuck"
    return errors


def _blocked(shared: Shared, thread: threading.Thread) -> None:
    """Wait until `thread`'s statement waits on a lock another connection holds."""
    wait_until(lambda: shared.waiting_on_a_lock() >= 1 or not thread.is_alive(), WAIT_S, what="a statement on a lock")
    assert thread.is_alive(), "it did not wait for the lock"


def test_collectors_starting_together_migrate_once(shared: Shared) -> None:
    stores = [shared.open() for _ in range(3)]
    errors = _threads(3, lambda i: stores[i].migrate())
    assert errors == []
    rows = stores[0].table_rows("schema_migrations")
    assert len(rows) == len({(r["component"], r["version"]) for r in rows})
    assert stores[1].migrate() == []


def test_concurrent_appends_keep_one_chain(shared: Shared) -> None:
    stores = [shared.open() for _ in range(4)]
    stores[0].migrate()
    per_thread = 25

    def append(i: int) -> None:
        log = AuditLog(stores[i])
        for n in range(per_thread):
            log.append("collector", f"c{i}", "test.appended", f"object/{i}/{n}", {"n": n}, T0 + n)

    assert _threads(4, append) == []
    log = AuditLog(stores[0])
    assert log.verify() is None
    assert [int(r["id"]) for r in log.rows()] == list(range(1, 4 * per_thread + 1))


def test_a_batch_on_a_second_collector_acks_what_the_first_committed(shared: Shared) -> None:
    first, second = shared.open(), shared.open()
    first.migrate()
    config = LivenessConfig(missed_heartbeats=3, clock_skew_threshold=timedelta(days=3650))
    ingest_1, ingest_2 = Ingest(first, config, T0), Ingest(second, config, T0)
    ingest_1.handle(birth_topic(SITE, AGENT), encode(birth(SITE, AGENT)), T0)
    acks: list[int] = []

    def second_batch() -> None:
        # State changes: nothing in them touches the agent's row, which heartbeats would lock by the way.
        changes = [state_change(n, T0 + n * 1000, *((State.DOWN, State.UP) if n % 2 else (State.UP, State.DOWN)))
                   for n in range(11, 21)]
        payload = encode(batch(SITE, AGENT, changes))
        [pub] = ingest_2.handle(events_topic(SITE, AGENT), payload, T0 + 2)
        acks.append(decode(Ack, pub.payload).through)

    # Collector 1 is storing seqs 1..10 (its transaction open) when collector 2 gets seqs 11..20.
    with first.transaction() as tx:
        tx.lock_ack(SITE, AGENT, "e1", create=True)
        tx.insert_events(SITE, AGENT, "e1", "b1", decode_events(heartbeats(SITE, AGENT, list(range(1, 11)))), T0 + 1)
        assert tx.advance_ack(SITE, AGENT, "e1") == 10
        thread = threading.Thread(target=second_batch)
        thread.start()
        _blocked(shared, thread)
    thread.join(WAIT_S)
    assert acks == [20], "the second collector's ack covers the first one's batch, committed meanwhile"
    assert first.acked_through(SITE, AGENT, "e1") == 20


def test_a_birth_on_a_second_collector_stores_the_batch_the_first_is_holding(shared: Shared) -> None:
    first, second = shared.open(), shared.open()
    first.migrate()
    config = LivenessConfig(missed_heartbeats=3, clock_skew_threshold=timedelta(days=3650))
    ingest_2 = Ingest(second, config, T0)
    acks: list[int] = []

    def birth_on_second() -> None:
        [pub] = ingest_2.handle(birth_topic(SITE, AGENT), encode(birth(SITE, AGENT)), T0 + 2)
        acks.append(decode(Ack, pub.payload).through)

    # Collector 1 is holding seqs 1..2 of a boot not yet born (its transaction open) when collector 2 gets the birth.
    with first.transaction() as tx:
        tx.lock_ack(SITE, AGENT, "e1", create=True)
        payload = encode(batch(SITE, AGENT, [state_change(1, T0), state_change(2, T0 + 1000, State.UP, State.DOWN)]))
        assert tx.hold_batch((SITE, AGENT, "e1", "b1"), (1, 2), payload, T0 + 1, per_agent=20, in_all=1000)
        thread = threading.Thread(target=birth_on_second)
        thread.start()
        _blocked(shared, thread)
    thread.join(WAIT_S)
    assert acks == [2], "the birth waited for the hold's commit and stored the held batch"
    assert len(first.state_changes(T0 - 1, T0 + 2000)) == 2 and first.table_rows("held_batches") == []


def test_a_run_takes_its_ack_row_before_its_agent_row(shared: Shared) -> None:
    """On PostgreSQL `take_run` is one statement; it must still lock the ack row first, as every collector does,
    or two collectors could deadlock over an agent's two rows."""
    first, second = shared.open(), shared.open()
    first.migrate()
    Ingest(first, LivenessConfig(), T0).handle(birth_topic(SITE, AGENT), encode(birth(SITE, AGENT)), T0)
    taken: list[tuple[int, Any]] = []

    def take() -> None:
        with second.transaction() as tx:
            taken.append(tx.take_run(SITE, AGENT, "e1", T0 + 5))

    with first.transaction() as tx:
        tx.seen(SITE, AGENT, T0 + 1)  # collector 1 holds the agent row, not its ack row
        thread = threading.Thread(target=take)
        thread.start()
        _blocked(shared, thread)  # collector 2 waits for the agent row, holding the ack row already:
        with psycopg.connect(shared.url, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {shared.schema}")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                conn.execute("SELECT 1 FROM acks WHERE site = %s AND agent = %s FOR UPDATE NOWAIT", (SITE, AGENT))
    thread.join(WAIT_S)
    [(acked, known)] = taken
    assert acked == 0 and known is not None and known.last_seen == T0 + 5


def decode_events(payload: bytes) -> list[Any]:
    return list(decode(EventBatch, payload).events)


# ---------------------------------------------------------------- ticket steps and timers

SHORT = RetryPolicy(attempt_timeout_s=2, attempts=1, run_budget_s=2, wait_max_s=0.05, backoff_min_ms=1000)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


class Killed(BaseException):
    """Stands for the collector being killed -9 between the vendor's answer and its record."""


class KilledBeforeRecord(Dispatcher):
    late: tuple[Dispatch, VendorRef | None] | None = None

    def _record(self, row: Dispatch, ref: VendorRef | None) -> None:
        self.late = (row, ref)
        raise Killed


def _dispatcher(store: PostgresStore, hook: FakeWebhookReceiver, clock: Clock, worker: str,
                cls: type[Dispatcher] = Dispatcher) -> Dispatcher:
    sink = make_sink(WebhookSink(kind="webhook", url=hook.url + hook.path, secret={"env": "LW_TEST_SECRET"}))
    return cls(store, {CONTRACT: sink}, clock=clock, policy=SHORT, origin="10.0.0.5", worker=worker)


async def test_a_step_another_collector_is_claiming_is_passed_over(shared: Shared, hook: FakeWebhookReceiver) -> None:
    first, second = shared.open(), shared.open()
    first.migrate()
    clock = Clock()
    d2 = _dispatcher(second, hook, clock, "c2")
    assert d2.request_create(ticket("inc-1")) and d2.request_create(ticket("inc-2"))
    claimed: list[list[str]] = []
    with first.transaction() as tx:
        tx.sql.query("SELECT id FROM ticket_dispatches WHERE incident_id = 'inc-1'" + tx.sql.for_update())
        thread = threading.Thread(target=lambda: claimed.append([r.incident_id for r in d2._claim(16)]))
        thread.start()
        thread.join(WAIT_S)
        assert not thread.is_alive(), "the claim waited for the other collector's lock"
    assert claimed == [["inc-2"]]


async def test_a_dead_collectors_claim_is_taken_over_after_its_lease(
    shared: Shared, hook: FakeWebhookReceiver
) -> None:
    first, second = shared.open(), shared.open()
    first.migrate()
    clock = Clock()
    dying = _dispatcher(first, hook, clock, "c1", KilledBeforeRecord)
    survivor = _dispatcher(second, hook, clock, "c2")
    dying.request_create(ticket())
    with pytest.raises(Killed):
        await dying.run_once()
    assert len(hook.tickets) == 1
    assert await survivor.run_once() == 0, "another collector's claim holds until its lease ends"
    clock.now += SHORT.lease_ms
    assert await survivor.run_once() == 1
    assert [x.state for x in survivor.dispatches("inc-7f3a", CONTRACT)] == ["done"]
    assert isinstance(dying, KilledBeforeRecord) and dying.late is not None
    Dispatcher._record(dying, *dying.late)  # the first one's answer, recorded late: its claim is gone
    log = AuditLog(second)
    assert [e.action for e in log.entries()].count("ticket.raised") == 1
    assert log.verify() is None
    assert len(hook.tickets) == 1, "the vendor holds one ticket (it de-duplicated the second create by its key)"


def test_a_due_timer_fires_once_across_collectors(shared: Shared) -> None:
    first, second = shared.open(), shared.open()
    first.migrate()
    with first.transaction() as tx:
        tx.sql.execute(
            "INSERT INTO tickets (incident_id, contract_id, vendor, sink, vendor_id, vendor_display, severity, state,"
            " opened_at, raised_at, updated_at) VALUES ('inc-1', ?, 'acme', 'webhook', 'WH-1', 'WH-1', 'S1', 'open',"
            " ?, ?, ?)",
            (CONTRACT, T0, T0, T0),
        )
        tx.sql.execute(
            "INSERT INTO ticket_timers (id, incident_id, contract_id, name, kind, clock, due_at, details)"
            " VALUES (1, 'inc-1', ?, 'rca', 'rca', 'none', ?, '{}')",
            (CONTRACT, T0),
        )
    book = ContractBook({}, {})
    timers = [Timers(s, book, lambda: T0 + 1, f"c{i}") for i, s in enumerate((first, second))]
    [due] = timers[1].due(T0 + 1)
    with first.transaction() as tx:  # collector 0 is firing it
        tx.sql.query("SELECT id FROM ticket_timers WHERE id = 1" + tx.sql.for_update())
        assert timers[1].fire(due, T0 + 1) is False, "passed over, not waited for"
    fired = []
    assert _threads(2, lambda i: fired.append(timers[i].fire(due, T0 + 1))) == []
    assert sorted(fired) == [False, True]
    assert [e.action for e in AuditLog(first).entries()] == ["rca.overdue"]
