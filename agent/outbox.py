"""The agent's durable outbox: every event waits in SQLite until the collector's ack covers it.

One SQLite file in WAL mode, one writer (the agent's event loop), one transaction per append or ack, so a
kill -9 leaves either the whole batch or none of it. `synchronous=FULL`, measured by bench/outbox_drain.py on
the dev VM: single-event appends ~7k/s FULL vs ~33k/s NORMAL, batched fill ~190k events/s FULL. The agent
appends a few events per second, so FULL costs nothing that matters and incidents survive a power cut too,
not only a crash of the process (NORMAL in WAL may lose the last commits on power loss).

Sequence numbers come from `meta.next_seq`, never from MAX(seq): deleting acked rows never lets a number be
reused. A new database gets a new random epoch (README: wire), and the collector keys events by (agent, epoch, seq).

Capacity: above `max_events` rows, or for rows older than `max_age`, the oldest droppable events (metrics,
heartbeat) are deleted and one `gap` event records the range. Its meaning for the receiver: seqs in
[from_seq, to_seq] that did not arrive before the gap event were dropped (the kept state changes and incidents
inside the range are sent before it, since everything goes out in seq order). Other types are never dropped.

A full disk (or `max_bytes`, the cap on the file, enforced by SQLite's `max_page_count`) raises `StorageFull`
with nothing written and the in-memory counters untouched; the caller keeps the events (agent/recorder.py).
`append_many(lost=...)` then records what could not be kept: the seqs those events would have taken are
skipped, and a `gap` for them comes first in the same transaction.

Acks: the outbox remembers (durably) the highest seq handed to the broker in this epoch, `sent_through`;
`ack()` never deletes beyond it, so no ack, forged or confused, can delete an event that was never sent.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from linewarden.config.agent import OutboxConfig
from linewarden.errors import StorageFull, StoreError
from linewarden.files import private_file
from linewarden.wire import (
    DROPPABLE_TYPES,
    ChangeDetectedBody,
    GapBody,
    HeartbeatBody,
    IncidentOpenedBody,
    IncidentResolvedBody,
    IncidentUpdatedBody,
    MetricsBody,
    StateChangeBody,
    VersionObservedBody,
    WireModel,
    decode,
    encode,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BODY_TYPES: dict[str, type[WireModel]] = {
    "state_change": StateChangeBody,
    "heartbeat": HeartbeatBody,
    "metrics": MetricsBody,
    "incident_opened": IncidentOpenedBody,
    "incident_updated": IncidentUpdatedBody,
    "incident_resolved": IncidentResolvedBody,
    "change_detected": ChangeDetectedBody,
    "version_observed": VersionObservedBody,
    "gap": GapBody,
}
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, type TEXT NOT NULL,"
        " body TEXT NOT NULL)",
        "CREATE INDEX events_ts ON events (ts)",
        "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
)
_DROPPABLE_SQL = ", ".join(f"'{t}'" for t in sorted(DROPPABLE_TYPES))
# Pruning for count frees this much more room, so a full outbox is not pruned (adding a gap) on every append.
_PRUNE_SLACK = 0.01
_PRUNE_SLACK_MIN = 10


@dataclass(frozen=True)
class Lost:
    """What could not be kept while the outbox was full: `count` events (of `types`) that never got a seq."""

    count: int
    types: tuple[str, ...]
    reason: str


class OutboxEvent(NamedTuple):
    seq: int
    ts: int
    type: str
    body: str  # the body's wire JSON


@dataclass(frozen=True)
class OutboxStats:
    epoch: str
    depth: int
    oldest_ts: int | None
    last_ack_seq: int
    last_ack_at_ms: int | None
    next_seq: int
    sent_through: int


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Outbox:
    """Durable, ordered, capped event store of one agent. Use from one thread."""

    def __init__(self, path: Path, config: OutboxConfig, clock_ms: Callable[[], int] = wall_ms) -> None:
        self._config = config
        self._clock_ms = clock_ms
        self._overfull = False  # over max_events with nothing droppable left (warned once per episode)
        private_file(path)  # 0600 in a 0700 folder: the WAL files SQLite adds take the file's mode
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._open()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open outbox {path}: {exc}") from exc
        self.path = path

    def _open(self) -> None:
        db = self._db
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect only on a new, empty database
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA journal_size_limit=67108864")
        if self._config.max_bytes is not None:
            page_size: int = db.execute("PRAGMA page_size").fetchone()[0]
            db.execute(f"PRAGMA max_page_count={max(1, self._config.max_bytes // page_size)}")
        version: int = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"outbox schema {version} is newer than this agent understands ({SCHEMA_VERSION})")
        with self._transaction():
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    db.execute(statement)
            if version == 0:
                db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("epoch", secrets.token_hex(6)), ("next_seq", "1"), ("last_ack_seq", "0"), ("sent_through", "0")],
                )
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        self.epoch: str = meta["epoch"]
        self._next_seq = int(meta["next_seq"])
        self._last_ack_seq = int(meta["last_ack_seq"])
        self._last_ack_at_ms = int(meta["last_ack_at_ms"]) if "last_ack_at_ms" in meta else None
        # Databases written before `sent_through` was kept: everything written may have been sent.
        self._sent_through = int(meta.get("sent_through", self._next_seq - 1))
        self._depth: int = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------ events

    def append(self, type: str, body: WireModel, ts_ms: int) -> int:
        """Store one event; returns its seq."""
        return self.append_many([(type, body, ts_ms)])[0]

    def append_many(
        self,
        events: Iterable[tuple[str, WireModel, int]],
        state: Mapping[str, Any] | None = None,
        lost: Lost | None = None,
    ) -> list[int]:
        """Store events in one transaction, in order; returns their seqs.

        `state` (key → JSON-able value) is saved in the same transaction, so what the events say and the
        runtime state that produced them can never disagree after a crash. `lost`: a gap for events that could
        not be kept goes first (see the module's docstring). Raises StorageFull when out of space.
        """
        rows = [(t, self._encoded(t, body), ts) for t, body, ts in events]
        if not rows and not state and lost is None:
            return []
        start, depth = self._next_seq, self._depth
        try:
            with self._transaction():
                if lost is not None:
                    self._insert_lost(lost)
                first = self._next_seq
                seqs = list(range(first, first + len(rows)))
                self._db.executemany(
                    "INSERT INTO events (seq, ts, type, body) VALUES (?, ?, ?, ?)",
                    [(seq, ts, t, body) for seq, (t, body, ts) in zip(seqs, rows, strict=True)],
                )
                self._next_seq, self._depth = first + len(rows), self._depth + len(rows)
                if rows:
                    self._enforce_limits()
                if self._next_seq != start:
                    self._set_meta("next_seq", self._next_seq)
                for key, value in (state or {}).items():
                    self._put_state(key, value)
        except BaseException:
            self._next_seq, self._depth = start, depth
            raise
        return seqs

    def _insert_lost(self, lost: Lost) -> None:
        """Inside the append transaction: skip the seqs of the lost events (at least one) and add their gap."""
        first = self._next_seq
        last = first + max(lost.count, 1) - 1
        gap = GapBody(from_seq=first, to_seq=last, count=lost.count, reason=lost.reason, dropped_types=list(lost.types))
        self._db.execute(
            "INSERT INTO events (seq, ts, type, body) VALUES (?, ?, 'gap', ?)",
            (last + 1, self._clock_ms(), encode(gap).decode()),
        )
        self._next_seq, self._depth = last + 2, self._depth + 1

    def pending(self, after_seq: int, limit: int) -> list[OutboxEvent]:
        """Events with seq > after_seq, in seq order, at most `limit`."""
        rows = self._db.execute(
            "SELECT seq, ts, type, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
        ).fetchall()
        return [OutboxEvent(*row) for row in rows]

    def mark_sent(self, through: int) -> None:
        """Events up to `through` are being handed to the broker: remember it durably before they go.

        Raises StorageFull (nothing remembered) when out of space; the caller may send anyway, keeping the
        figure in memory only (`sent_through` still covers it until the process restarts)."""
        if through <= self._sent_through:
            return
        self._sent_through = through
        with self._transaction():
            self._set_meta("sent_through", through)

    def ack(self, epoch: str, through: int) -> int:
        """Delete events up to `through` of the current epoch; returns how many. Other epochs, and acks beyond
        `sent_through` (events never sent), delete nothing (the forwarder logs and counts them)."""
        if epoch != self.epoch or through > self._sent_through or through <= self._last_ack_seq:
            return 0
        now = self._clock_ms()
        with self._transaction():  # a failed commit (a full disk) keeps the events, and so the depth
            deleted = self._db.execute("DELETE FROM events WHERE seq <= ?", (through,)).rowcount
            self._set_meta("last_ack_seq", through)
            self._set_meta("last_ack_at_ms", now)
        self._depth -= deleted
        self._last_ack_seq, self._last_ack_at_ms = through, now
        if self._depth == 0:
            self._db.execute("PRAGMA incremental_vacuum")
        return deleted

    def start_new_epoch(self) -> str:
        """Take a new random epoch, keeping every unacknowledged event and its seq; the acked point moves to
        just before the oldest kept event, so the collector's contiguous ack for the new epoch starts there
        (README, "Wire protocol": a restored backup starts a new epoch). Returns the new epoch."""
        oldest = self._db.execute("SELECT MIN(seq) FROM events").fetchone()[0]
        floor = (oldest if oldest is not None else self._next_seq) - 1
        epoch = secrets.token_hex(6)
        with self._transaction():
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (epoch,))
            self._set_meta("last_ack_seq", floor)
            self._set_meta("sent_through", floor)
        log.warning("outbox %s is behind its collector (restored or copied): new epoch %s from seq %d",
                    self.path, epoch, floor + 1)
        self.epoch, self._last_ack_seq, self._sent_through = epoch, floor, floor
        return epoch

    def stats(self) -> OutboxStats:
        row = self._db.execute("SELECT ts FROM events ORDER BY seq LIMIT 1").fetchone()
        return OutboxStats(
            epoch=self.epoch,
            depth=self._depth,
            oldest_ts=row[0] if row else None,
            last_ack_seq=self._last_ack_seq,
            last_ack_at_ms=self._last_ack_at_ms,
            next_seq=self._next_seq,
            sent_through=self._sent_through,
        )

    # ------------------------------------------------------------ runtime state

    def get_state(self, key: str) -> Any | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_state(self, key: str, value: Any) -> None:
        """Store a JSON-able value under `key` (durably, in its own transaction)."""
        with self._transaction():
            self._put_state(key, value)

    def _put_state(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, separators=(",", ":"))),
        )

    # ------------------------------------------------------------ internals

    @staticmethod
    def _encoded(event_type: str, body: WireModel) -> str:
        """The body's wire JSON, checked as the collector will decode it: the outbox never holds an event the
        collector would refuse (building a Struct checks no bounds). Raises StoreError for a body of the wrong
        type, WireError (a bug, as a pydantic model used to raise when built) for one out of bounds."""
        expected = BODY_TYPES.get(event_type)
        if expected is None:
            raise StoreError(f"unknown event type {event_type!r}")
        if not isinstance(body, expected):
            raise StoreError(f"event type {event_type!r} needs a {expected.__name__}, not {body.__class__.__name__}")
        payload = encode(body)
        decode(expected, payload)
        return payload.decode()

    def _enforce_limits(self) -> None:
        """Inside the append transaction: drop old droppable events beyond the caps and record one gap."""
        cutoff = self._clock_ms() - int(self._config.max_age.total_seconds() * 1000)
        oldest = self._db.execute("SELECT MIN(ts) FROM events").fetchone()[0]
        dropped = self._delete_droppable("ts < ?", cutoff, -1) if oldest is not None and oldest < cutoff else []
        reason = "outbox max age"
        if self._depth - len(dropped) > self._config.max_events:
            excess = self._depth - len(dropped) - self._config.max_events
            excess += max(int(self._config.max_events * _PRUNE_SLACK), _PRUNE_SLACK_MIN)
            dropped += self._delete_droppable("1", None, excess)
            reason = "outbox full"
            over = self._depth - len(dropped) > self._config.max_events
            if over and not self._overfull:
                log.warning("outbox holds more than %d events that must not be dropped", self._config.max_events)
            self._overfull = over
        else:
            self._overfull = False
        if not dropped:
            return
        self._depth -= len(dropped)
        seqs = [seq for seq, _ in dropped]
        gap = GapBody(
            from_seq=min(seqs),
            to_seq=max(seqs),
            count=len(dropped),
            reason=reason,
            dropped_types=sorted({t for _, t in dropped}),
        )
        log.warning("%s: dropped %d events (seq %d..%d)", reason, gap.count, gap.from_seq, gap.to_seq)
        seq = self._next_seq
        self._db.execute(
            "INSERT INTO events (seq, ts, type, body) VALUES (?, ?, 'gap', ?)",
            (seq, self._clock_ms(), encode(gap).decode()),
        )
        self._next_seq = seq + 1
        self._depth += 1

    def _delete_droppable(self, condition: str, arg: int | None, limit: int) -> list[tuple[int, str]]:
        params: Sequence[int] = (limit,) if arg is None else (arg, limit)
        rows = self._db.execute(
            f"DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE type IN ({_DROPPABLE_SQL})"
            f" AND {condition} ORDER BY seq LIMIT ?) RETURNING seq, type",
            params,
        ).fetchall()
        return [(int(seq), str(t)) for seq, t in rows]

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE .. COMMIT, ROLLBACK on any exception (sqlite3 errors become StoreError; a full disk or
    database cap, SQLITE_FULL, becomes StorageFull)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _store_error(exc) from exc

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error as commit_exc:
                exc = commit_exc
        if self._db.in_transaction:  # SQLite rolls back by itself on some errors (e.g. disk full)
            self._db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise _store_error(exc) from exc


def _store_error(exc: sqlite3.Error) -> StoreError:
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return StorageFull(f"outbox write failed: {exc}")
    return StoreError(f"outbox write failed: {exc}")
