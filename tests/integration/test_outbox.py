"""The SQLite outbox on real files: seq and epoch, acks, caps with gap events, runtime state, reopen."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.outbox import Lost, Outbox
from linewarden.config.agent import OutboxConfig
from linewarden.config.load import convert
from linewarden.domain import State
from linewarden.errors import StorageFull, StoreError
from linewarden.wire import GapBody, HeartbeatBody, MetricsBody, StateChangeBody, decode, parse_event

T0 = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def metrics(minute: int = 0) -> MetricsBody:
    return MetricsBody(target="plc-1", minute=T0 + minute, probes=12, failures=0)


def change(to: State = State.DOWN) -> StateChangeBody:
    return StateChangeBody(target="plc-1", asset="line-3", from_=State.UP, to=to, reason="timeout", at=T0)


def open_outbox(path: Path, clock: Clock | None = None, **cfg: object) -> Outbox:
    return Outbox(path, convert(OutboxConfig, cfg), clock_ms=clock or Clock())


def test_seq_is_ordered_and_never_reused_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = open_outbox(path)
    assert box.append("metrics", metrics(), T0) == 1
    assert box.append_many([("metrics", metrics(1), T0), ("state_change", change(), T0)]) == [2, 3]
    epoch = box.epoch
    box.mark_sent(3)
    assert box.ack(epoch, 3) == 3
    assert box.stats().depth == 0
    box.close()

    box = open_outbox(path)
    assert box.epoch == epoch
    assert box.append("heartbeat", HeartbeatBody(interval_s=60, states={"plc-1": State.UP}), T0) == 4
    stats = box.stats()
    assert (stats.next_seq, stats.last_ack_seq, stats.depth) == (5, 3, 1)


def test_ack_beyond_what_was_sent_deletes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = open_outbox(path)
    box.append_many([("metrics", metrics(i), T0) for i in range(10)])
    box.mark_sent(4)
    assert box.ack(box.epoch, 7) == 0, "seqs 5..7 were never sent"
    assert box.stats().depth == 10
    box.close()
    box = open_outbox(path)
    assert box.stats().sent_through == 4, "what was sent is remembered across a restart"
    assert box.ack(box.epoch, 4) == 4
    assert box.stats().depth == 6


def test_pending_returns_stored_wire_events_in_order(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    box.append_many([("metrics", metrics(i), T0 + i) for i in range(5)])
    rows = box.pending(after_seq=1, limit=3)
    assert [r.seq for r in rows] == [2, 3, 4]
    event = parse_event({"seq": rows[0].seq, "ts": rows[0].ts, "type": rows[0].type, "body": json.loads(rows[0].body)})
    assert event.body == metrics(1)


def test_ack_deletes_through_seq_of_current_epoch_only(tmp_path: Path) -> None:
    clock = Clock()
    box = open_outbox(tmp_path / "o.db", clock)
    box.append_many([("metrics", metrics(i), T0) for i in range(10)])
    box.mark_sent(10)
    assert box.ack("0123456789ab", 10) == 0
    assert box.stats().depth == 10
    clock.now = T0 + 5000
    assert box.ack(box.epoch, 4) == 4
    assert box.ack(box.epoch, 2) == 0
    stats = box.stats()
    assert [r.seq for r in box.pending(0, 100)] == list(range(5, 11))
    assert (stats.last_ack_seq, stats.last_ack_at_ms, stats.depth) == (4, T0 + 5000, 6)


def test_new_database_gets_new_epoch_and_starts_at_one(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = open_outbox(path)
    box.append_many([("metrics", metrics(i), T0) for i in range(3)])
    first_epoch = box.epoch
    box.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    box = open_outbox(path)
    assert box.epoch != first_epoch
    assert box.append("metrics", metrics(), T0) == 1


def test_full_outbox_drops_metrics_first_keeps_state_changes_and_records_gap(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db", max_events=100)
    box.append_many([("state_change", change(), T0)] + [("metrics", metrics(i), T0) for i in range(98)])
    box.append_many([("state_change", change(State.UP), T0), ("metrics", metrics(99), T0)])
    rows = box.pending(0, 1000)
    types = [r.type for r in rows]
    assert types.count("state_change") == 2
    assert types[-1] == "gap"
    gap = decode(GapBody, rows[-1].body.encode())
    assert gap.dropped_types == ["metrics"]
    assert gap.reason == "outbox full"
    # 101 rows, 100 allowed: the oldest metrics go, 1 over the cap plus 10 as slack
    assert (gap.from_seq, gap.to_seq, gap.count) == (2, 12, 11)
    assert len(rows) == 101 - 11 + 1
    assert rows[-1].seq == 102  # the gap takes the next seq


def test_full_outbox_never_drops_state_changes(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db", max_events=100)
    box.append_many([("state_change", change(), T0) for _ in range(120)])
    rows = box.pending(0, 1000)
    assert len(rows) == 120
    assert {r.type for r in rows} == {"state_change"}


def test_events_older_than_max_age_are_dropped_if_droppable(tmp_path: Path) -> None:
    clock = Clock()
    box = open_outbox(tmp_path / "o.db", clock, max_age="1h")
    box.append_many([("metrics", metrics(), T0), ("state_change", change(), T0), ("metrics", metrics(1), T0)])
    clock.now = T0 + int(timedelta(hours=2).total_seconds() * 1000)
    box.append("metrics", metrics(2), clock.now)
    rows = box.pending(0, 100)
    assert [(r.seq, r.type) for r in rows] == [(2, "state_change"), (4, "metrics"), (5, "gap")]
    gap = decode(GapBody, rows[-1].body.encode())
    assert (gap.from_seq, gap.to_seq, gap.count, gap.reason) == (1, 3, 2, "outbox max age")


def test_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = open_outbox(path)
    assert box.get_state("debounce") is None
    box.set_state("debounce", {"plc-1": ["DOWN", 2]})
    box.set_state("debounce", {"plc-1": ["UP", 1]})
    box.close()
    assert open_outbox(path).get_state("debounce") == {"plc-1": ["UP", 1]}


def test_wrong_body_for_type_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    with pytest.raises(StoreError):
        box.append_many([("metrics", metrics(), T0), ("state_change", metrics(), T0)])
    with pytest.raises(StoreError):
        box.append("no_such_type", metrics(), T0)
    assert box.stats().depth == 0
    assert box.append("metrics", metrics(), T0) == 1


def test_failed_transaction_leaves_counters_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = open_outbox(path)
    box.append("metrics", metrics(), T0)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    with pytest.raises(StoreError):
        box.append_many([("metrics", metrics(1), T0), ("metrics", metrics(2), T0)])
    blocker.execute("DROP TRIGGER refuse")
    blocker.close()
    assert box.stats().depth == 1
    assert box.append("metrics", metrics(3), T0) == 2


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    open_outbox(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(StoreError, match="newer"):
        open_outbox(path)


class _FullAtCommit:
    """The outbox's connection, with a disk that fills up at the next COMMIT."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def test_an_ack_that_cannot_be_committed_keeps_the_events_and_the_depth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk at an ack's commit: nothing is deleted, so the depth the heartbeat reports stays the count
    of events held (it went negative, and the heartbeat was refused, when the depth moved before the commit)."""
    box = open_outbox(tmp_path / "o.db")
    box.append_many([("state_change", change(), T0)] * 5)
    box.mark_sent(5)
    monkeypatch.setattr(box, "_db", _FullAtCommit(box._db))
    with pytest.raises(StoreError):
        box.ack(box.epoch, 5)
    monkeypatch.undo()
    assert box.stats().depth == len(box.pending(0, 100)) == 5
    assert box.ack(box.epoch, 5) == 5 and box.stats().depth == 0


def test_full_database_raises_storage_full_and_keeps_counters(tmp_path: Path) -> None:
    """SQLite's own SQLITE_FULL (the file capped by max_bytes): nothing of the failed append is written, the
    seq counter does not move, and once acks free space the next append records the loss as a gap."""
    box = open_outbox(tmp_path / "o.db", max_bytes=65_536)
    with pytest.raises(StorageFull, match="full"):
        for _ in range(10_000):
            box.append_many([("state_change", change(), T0)] * 20)
    full = box.stats()
    rows = box.pending(0, 100_000)
    assert rows[-1].seq == full.next_seq - 1 == full.depth, "the failed append left no trace"
    box.mark_sent(full.next_seq - 1)
    box.ack(box.epoch, full.next_seq - 1)
    seqs = box.append_many([("state_change", change(), T0)], lost=Lost(3, ("heartbeat",), "disk full"))
    first = full.next_seq
    assert seqs == [first + 4], "three skipped seqs and the gap come first"
    [gap, kept] = box.pending(full.next_seq - 1, 10)
    assert (gap.seq, gap.type) == (first + 3, "gap")
    assert json.loads(gap.body) == {
        "from_seq": first, "to_seq": first + 2, "count": 3, "reason": "disk full", "dropped_types": ["heartbeat"]
    }
    assert kept.type == "state_change"
