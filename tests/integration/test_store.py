"""The store on a real SQLite file (and PostgreSQL when present): migrations, transactions, period queries."""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from collector.store.base import DataRejected
from collector.store.migrations import CORE, Migration
from collector.store.sqlite import SqliteStore
from linewarden.domain import State
from linewarden.wire import HeartbeatBody, HeartbeatEvent, MaintenanceWindowWire
from tests.integration.collector_helpers import T0, birth, incident_opened, state_change
from tests.integration.store_params import STORES, open_store_param

DAY = 86_400_000


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    yield from open_store_param(request, tmp_path)


def test_migrations_apply_once_and_components_add_theirs(store):
    assert store.migrate() == []
    extra = Migration("example", 1, "CREATE TABLE example_things (id {id}, incident TEXT NOT NULL UNIQUE)")
    assert store.migrate([*CORE, extra]) == [("example", 1)]
    assert store.migrate([*CORE, extra]) == []
    assert "example_things" in store.table_names()


def test_a_failed_transaction_leaves_nothing(store):
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.insert_event("p1", "a1", "e1", "b1", state_change(1, T0), T0)
        raise RuntimeError("boom")
    assert store.table_rows("events") == []
    assert store.table_rows("state_changes") == []


def test_a_nul_in_a_text_is_refused_by_both_stores(store):
    """PostgreSQL cannot hold a NUL; SQLite refuses it too, so an archive of either imports into the other."""
    with pytest.raises(DataRejected), store.transaction() as tx:
        tx.sql.execute("INSERT INTO counters (name, value) VALUES (?, 1)", ("a\x00b",))
    with pytest.raises(DataRejected), store.reader() as sql:
        sql.query("SELECT id FROM audit_log WHERE actor = ?", ("a\x00",))
    assert [r for r in store.table_rows("counters") if r["name"].startswith("a")] == []


def test_writes_survive_reopening(tmp_path):
    s = SqliteStore(tmp_path / "c.db")
    s.migrate()
    with s.transaction() as tx:
        tx.insert_event("p1", "a1", "e1", "b1", state_change(1, T0), T0)
        tx.advance_ack("p1", "a1", "e1")
    s.close()
    s = SqliteStore(tmp_path / "c.db")
    assert s.migrate() == []
    assert s.acked_through("p1", "a1", "e1") == 1
    assert len(s.table_rows("events")) == 1
    s.close()


def test_period_view_holds_what_the_sla_engine_needs(store):
    with store.transaction() as tx:
        tx.record_birth(birth("p1", "a1"), T0)
        tx.insert_event("p1", "a1", "e1", "b1", state_change(1, T0 - DAY, to=State.DOWN), T0)
        tx.insert_event("p1", "a1", "e1", "b1", state_change(2, T0 - DAY // 2, to=State.UP, frm=State.DOWN), T0)
        tx.insert_event("p1", "a1", "e1", "b1", state_change(3, T0 + 1000, to=State.DOWN), T0)
        tx.insert_event("p1", "a1", "e1", "b1", state_change(4, T0 + 2 * DAY, to=State.UP, frm=State.DOWN), T0)
        tx.insert_event("p1", "a1", "e1", "b1", incident_opened(5, T0 + 1000), T0)
        tx.add_ticket_record("inc-1", "ticket_raised", T0 + 2000, "collector", {"ticket": "V-1"}, "sink")
        tx.add_gap("p1", "a1", T0 + 5000, T0 + 9000, "missed heartbeats")
        tx.add_gap("p1", "a1", T0 - 9000, T0 - 5000, "before the period")
        window = MaintenanceWindowWire(
            id="mw-1", start=T0 + 3000, end=T0 + 4000, assets=["line3-plc"], announced_at=T0 - DAY, announced_by="ops"
        )
        tx.add_maintenance_window("p1", window, cancelled_at=None)

    view = store.period(T0, T0 + DAY)
    # the UP it entered the period in, then the DOWN inside it; nothing after the period
    assert [(c.to_state, c.at) for c in view.state_changes] == [("UP", T0 - DAY // 2), ("DOWN", T0 + 1000)]
    assert [(g.start_at, g.end_at) for g in view.gaps] == [(T0 + 5000, T0 + 9000)]
    assert [(w.id, w.assets, w.announced_at) for w in view.maintenance_windows] == [("mw-1", ("line3-plc",), T0 - DAY)]
    [incident] = view.incidents
    assert (incident.id, incident.severity, incident.opened_at) == ("inc-1", "S1", T0 + 1000)
    assert [s.severity for s in incident.severity_history] == ["S1"]
    assert [(t.kind, t.details) for t in incident.tickets] == [("ticket_raised", {"ticket": "V-1"})]
    assert [(t.target, t.asset, t.criticality) for t in view.targets] == [("plc-1", "line3-plc", "critical")]


def test_incident_events_out_of_order_end_the_same(store):
    from linewarden.wire import IncidentResolvedBody, IncidentResolvedEvent

    resolved = IncidentResolvedEvent(seq=2, ts=T0 + 5000, body=IncidentResolvedBody(incident="inc-1", at=T0 + 5000))
    with store.transaction() as tx:
        tx.insert_event("p1", "a1", "e1", "b1", resolved, T0)
        tx.insert_event("p1", "a1", "e1", "b1", incident_opened(1, T0), T0)
    [incident] = store.incidents(T0, T0 + 1)
    assert (incident.opened_at, incident.resolved_at, incident.asset) == (T0, T0 + 5000, "line3-plc")


def test_dead_letter_counter_counts_every_one(store):
    with store.transaction() as tx:
        tx.add_dead_letter("lw/v1/p1/a1/events", b"\xff\xfe junk", "not JSON", T0, "p1", "a1")
        tx.add_dead_letter("elsewhere", b"x" * 100_000, "not a linewarden topic", T0, None, None)
    assert store.dead_letter_total() == 2
    assert store.dead_letter_counts() == {("p1", "a1"): 1}
    assert all(len(d.payload) <= 65536 for d in store.dead_letters())


def test_a_state_change_without_asset_takes_it_from_the_birth_registry(store):
    with store.transaction() as tx:
        tx.record_birth(birth("p1", "a1"), T0)
        event = state_change(1, T0)
        tx.insert_event("p1", "a1", "e1", "b1", replace(event, body=replace(event.body, asset=None)), T0)
    [row] = store.table_rows("state_changes")
    assert (row["target"], row["asset"]) == ("plc-1", "line3-plc")


def test_the_latest_heartbeat_gives_the_agents_outbox_figures(store):
    def beat(seq: int, ts: int, **figures: int) -> HeartbeatEvent:
        depth, oldest = figures.get("outbox_depth"), figures.get("oldest_unacked_at")
        return HeartbeatEvent(seq=seq, ts=ts, body=HeartbeatBody(interval_s=60, states={}, outbox_depth=depth,
                                                                 oldest_unacked_at=oldest))  # fmt: skip

    def figures() -> tuple[int | None, int | None]:
        [a] = store.agents()
        return a.outbox_depth, a.oldest_unacked_at

    with store.transaction() as tx:
        tx.record_birth(birth("p1", "a1"), T0)
    assert figures() == (None, None)  # not reported yet
    with store.transaction() as tx:  # in one batch the latest wins, whatever the order
        tx.insert_events("p1", "a1", "e1", "b1", [beat(2, T0 + 2000, outbox_depth=7, oldest_unacked_at=T0),
                                                  beat(1, T0 + 1000, outbox_depth=3, oldest_unacked_at=T0)], T0)
    assert figures() == (7, T0)
    with store.transaction() as tx:  # an older heartbeat arriving late changes nothing
        tx.insert_events("p1", "a1", "e1", "b1", [beat(5, T0, outbox_depth=1, oldest_unacked_at=T0)], T0)
    assert figures() == (7, T0)
    with store.transaction() as tx:  # an empty outbox has no oldest event
        tx.insert_events("p1", "a1", "e1", "b1", [beat(3, T0 + 3000, outbox_depth=0)], T0)
    assert figures() == (0, None)
    with store.transaction() as tx:  # an agent from before the figures (a downgrade): not reported again
        tx.insert_events("p1", "a1", "e1", "b1", [beat(4, T0 + 4000)], T0)
    assert figures() == (None, None)


def test_two_contracts_tickets_record_the_same_step_in_the_same_millisecond(store):
    with store.transaction() as tx:
        assert tx.add_ticket_record("inc-1", "ticket_raised", T0, "collector", {"contract": "a"}, "collector")
        assert tx.add_ticket_record("inc-1", "ticket_raised", T0, "collector", {"contract": "b"}, "collector")
        assert not tx.add_ticket_record("inc-1", "ticket_raised", T0, "collector", {"contract": "b"}, "collector")
    assert sorted(r["contract"] for r in store.table_rows("ticket_records")) == ["a", "b"]


def test_incidents_of_a_period_carry_their_own_steps_and_records_whatever_their_number(store):
    # More incidents than the 1,000 ids a statement used to take, plus one outside the period whose records
    # must not be read; every record's details are its own (the store parses equal texts once).
    n = 1_500
    with store.transaction() as tx:
        tx.sql.execute_many(
            "INSERT INTO incidents (id, site, agent, kind, asset, severity, targets, opened_at, resolved_at)"
            " VALUES (?, 'p1', 'a1', 'target', ?, 'S3', '[\"plc-1\"]', ?, ?)",
            [(f"inc-{i:04d}", f"asset-{i % 7}", T0 + i, T0 + DAY) for i in range(n)] + [("old", "x", 0, 1)],
        )
        tx.sql.execute_many(
            "INSERT INTO incident_updates (incident, at, severity, state, reason, in_production)"
            " VALUES (?, ?, 'S2', 'DOWN', 'worse', 1)",
            [(f"inc-{i:04d}", T0 + n + i) for i in range(0, n, 3)] + [("old", 1)],
        )
        for i in [*range(n), -1]:
            incident = "old" if i < 0 else f"inc-{i:04d}"
            tx.add_ticket_record(incident, "ticket_acknowledged", T0 + 2 * n - i, "vendor", {}, "sink")
            tx.add_ticket_record(incident, "ticket_raised", T0 + i, "collector", {"contract": "c1"}, "sink")
    found = store.incidents(T0, T0 + DAY)
    assert [r.id for r in found] == [f"inc-{i:04d}" for i in range(n)]
    for i, r in enumerate(found):
        assert [t.kind for t in r.tickets] == ["ticket_raised", "ticket_acknowledged"], r.id
        assert [t.at for t in r.tickets] == [T0 + i, T0 + 2 * n - i]
        assert [(s.at, s.severity, s.in_production) for s in r.severity_history] == (
            [(T0 + n + i, "S2", True)] if i % 3 == 0 else []
        )
    found[0].tickets[0].details["contract"] = "changed"
    assert found[1].tickets[0].details == {"contract": "c1"}


def test_incidents_read_inside_a_transaction_see_its_writes(store):
    with store.transaction() as tx:
        tx.insert_event("p1", "a1", "e1", "b1", incident_opened(1, T0), T0)
        tx.add_ticket_record("inc-1", "ticket_raised", T0 + 1, "collector", {}, "sink")
        [row] = store.incidents(T0, T0 + 1)
        assert [t.kind for t in row.tickets] == ["ticket_raised"]
    [row] = store.incidents(T0, T0 + 1)  # and after it, in a read transaction of its own
    assert [t.kind for t in row.tickets] == ["ticket_raised"]
