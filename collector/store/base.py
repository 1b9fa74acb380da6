"""The collector's repository interface, written once in portable SQL for every backend.

A backend (SQLite, PostgreSQL) supplies only a connection: `Sql` (execute and query with `?`
placeholders), transactions, the list of tables, and the spelling of an auto-numbered key. Everything
else, the writes of ingest and import and the reads of reports, lives here, so both backends behave alike.

Writes happen in `with store.transaction() as tx:` (one transaction: all or nothing); reads are
methods of `Store`. Times are int milliseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from itertools import compress
from operator import attrgetter
from typing import Any, Protocol

from collector.store.migrations import Migration, all_migrations, statements
from collector.store.rows import (
    AgentRow,
    ChangeRow,
    DeadLetterRow,
    GapRow,
    HeldBatch,
    IncidentRow,
    MaintenanceWindowRow,
    PeriodData,
    SeverityStep,
    StateChangeRow,
    TargetRow,
    TicketRecordRow,
)
from linewarden.errors import StoreError
from linewarden.wire import (
    Birth,
    ChangeDetectedEvent,
    Event,
    GapEvent,
    HeartbeatEvent,
    IncidentOpenedEvent,
    IncidentResolvedEvent,
    IncidentUpdatedEvent,
    MaintenanceWindowWire,
    StateChangeEvent,
    TargetInfo,
    VersionObservedEvent,
    clip,
    encode,
    events_topic,
)

Row = dict[str, Any]
DEAD_LETTER_COUNTER = "dead_letters"
# Longest payload kept in a dead letter; the rest is cut (a flood of huge junk must not fill the disk).
MAX_DEAD_LETTER_CHARS = 65536


class DataRejected(StoreError):
    """The database refused a value (out of range, NUL in text, a broken constraint): the data is bad, and
    sending it again will not help. Backends raise it in place of their driver's data errors."""


class Sql(Protocol):
    """A connection inside a transaction or a read. Placeholders are `?`."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; return the number of rows it changed."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows as tuples in the order of the SELECT list: the reports' bulk reads (no dict per row)."""
        ...

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each parameter row (one round trip where the driver allows)."""
        ...

    # Whether a WITH clause may hold INSERT or UPDATE (PostgreSQL; SQLite's may not).
    writing_ctes: bool

    def values(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        """A row source of `rows` for a WITH clause, and its parameters; `types`: each column's SQL type. SQLite:
        `VALUES (?, ...), ...` with every value a parameter. PostgreSQL: one array parameter per column, unnested,
        so the statement's text does not grow with the rows: the driver parses it once (it parses a long text
        with many parameters again at every call, the most client CPU of a group's statements)."""
        ...

    def for_update(self, skip_locked: bool = False) -> str:
        """The clause that row-locks what a SELECT read until the transaction ends (` FOR UPDATE`, with
        ` SKIP LOCKED`: rows another transaction holds are left out); '' where one writer at a time is all there
        is (SQLite)."""
        ...

    def insert_new(self, table: str, columns: Sequence[str], key: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert rows into `table`, skipping those whose `key` (its primary key) is there already: the bulk
        path of ingest, in the dialect's fastest way."""
        ...


class Snapshot(Protocol):
    """A consistent read of every table at one moment, for exports: rows stream in batches."""

    def count(self, table: str) -> int: ...

    def rows(self, table: str) -> Iterator[Row]: ...


_IN_CHUNK = 1000
_seq = attrgetter("seq")
_type = attrgetter("type")
_EVENT_COLUMNS = ("site", "agent", "epoch", "seq", "boot", "ts", "type", "body", "received_at")
_EVENT_KEY = ("site", "agent", "epoch", "seq")
# Column types of the row sources (`Sql.values`): an epoch's seq range (site, agent, epoch, lo, hi), an epoch's seq.
_EPOCH_RANGE = ("TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT")
_EPOCH_SEQ = ("TEXT", "TEXT", "TEXT", "BIGINT")
# One agent's run of events to store: site, agent, epoch, boot, events, received_at.
EventRun = tuple[str, str, str, str, Sequence[Event], int]


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _bool(value: object) -> bool | None:
    return None if value is None else bool(value)


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _agent_row(r: Row) -> AgentRow:
    return AgentRow(**{**r, "skew_flagged": bool(r["skew_flagged"])})


def _gap_row(r: Row) -> GapRow:
    return GapRow(**r)


class Writer:
    """The write operations of one transaction. Every insert is idempotent."""

    def __init__(self, sql: Sql) -> None:
        self.sql = sql
        self._registries: dict[tuple[str, str], dict[str, str]] = {}  # registry_of, read once per transaction
        # refused_seqs read ahead (`prefetch_screening`): per epoch, the seq range read and the refused seqs in it
        self._refused: dict[tuple[str, str, str], tuple[int, int, set[int]]] = {}

    # ------------------------------------------------------------ agents

    def agent(self, site: str, agent: str) -> AgentRow | None:
        rows = self.sql.query("SELECT * FROM agents WHERE site = ? AND agent = ?", (site, agent))
        return _agent_row(rows[0]) if rows else None

    def record_birth(self, birth: Birth, received_at: int) -> None:
        self.sql.execute(
            "INSERT INTO agents (site, agent, epoch, boot, version, config_hash, heartbeat_interval_s,"
            " birth_at, birth_received_at, last_seen, boot_seq, outbox_fault)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (site, agent) DO UPDATE SET epoch = excluded.epoch, boot = excluded.boot,"
            " version = excluded.version, config_hash = excluded.config_hash,"
            " heartbeat_interval_s = excluded.heartbeat_interval_s, birth_at = excluded.birth_at,"
            " birth_received_at = excluded.birth_received_at, last_seen = excluded.last_seen,"
            " boot_seq = excluded.boot_seq, death_at = NULL, death_reason = NULL,"
            " outbox_fault = excluded.outbox_fault",
            (
                birth.site,
                birth.agent,
                birth.epoch,
                birth.boot,
                birth.version,
                birth.config_hash,
                birth.heartbeat_interval_s,
                birth.ts,
                received_at,
                received_at,
                birth.boot_seq,
                birth.outbox_fault,
            ),
        )
        self.sql.execute(
            "INSERT INTO births (site, agent, epoch, boot, received_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (site, agent, epoch, boot) DO NOTHING",
            (birth.site, birth.agent, birth.epoch, birth.boot, received_at),
        )
        self.register_targets(birth.site, birth.agent, birth.targets, birth.ts)

    def born(self, site: str, agent: str, epoch: str, boot: str) -> bool:
        """Whether a birth of this epoch and boot was ever stored."""
        return bool(
            self.sql.query(
                "SELECT 1 AS one FROM births WHERE site = ? AND agent = ? AND epoch = ? AND boot = ?",
                (site, agent, epoch, boot),
            )
        )

    def register_targets(
        self, site: str, agent: str, targets: Sequence[TargetInfo], at: int, newer_only: bool = False
    ) -> bool:
        """Put an agent's targets in the registry as of `at`; False when that changed nothing.

        A birth always wins (it is the agent's configuration now); `newer_only` (an imported target list) does
        not overwrite what a later list said.
        """
        guard = " WHERE targets.last_seen < excluded.last_seen" if newer_only else ""
        self._registries.pop((site, agent), None)
        changed = 0
        for t in targets:
            changed += self.sql.execute(
                "INSERT INTO targets (site, agent, target, kind, asset, criticality, first_seen, last_seen)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, agent, target) DO UPDATE SET"
                " kind = excluded.kind, asset = excluded.asset, criticality = excluded.criticality,"
                " last_seen = excluded.last_seen" + guard,
                (site, agent, t.id, t.kind.value, t.asset, t.criticality.value, at, at),
            )
        return changed > 0

    def registry_of(self, site: str, agent: str) -> dict[str, str]:
        """The agent's registered targets (from its births and imported target lists) and their assets."""
        known = self._registries.get((site, agent))
        if known is None:
            rows = self.sql.query("SELECT target, asset FROM targets WHERE site = ? AND agent = ?", (site, agent))
            known = self._registries[(site, agent)] = {str(r["target"]): str(r["asset"]) for r in rows}
        return dict(known)

    def last_event_at(self, site: str, agent: str, boot: str, since: int) -> int | None:
        """Measured time of the latest event at or after `since` stored from batches of `boot`."""
        rows = self.sql.query(
            "SELECT MAX(ts) AS ts FROM events WHERE ts >= ? AND site = ? AND agent = ? AND boot = ?",
            (since, site, agent, boot),
        )
        return None if not rows or rows[0]["ts"] is None else int(rows[0]["ts"])

    def record_death(self, site: str, agent: str, at: int, reason: str, received_at: int) -> None:
        self.sql.execute(
            "UPDATE agents SET death_at = ?, death_reason = ?, last_seen = ? WHERE site = ? AND agent = ?",
            (at, reason, received_at, site, agent),
        )

    def seen(self, site: str, agent: str, received_at: int) -> AgentRow | None:
        """Move the agent's last_seen up to `received_at`; its row (None: no birth yet), in one statement."""
        rows = self.sql.query(
            "UPDATE agents SET last_seen = CASE WHEN last_seen < ? THEN ? ELSE last_seen END"
            " WHERE site = ? AND agent = ? RETURNING *",
            (received_at, received_at, site, agent),
        )
        return _agent_row(rows[0]) if rows else None

    def set_skew(self, site: str, agent: str, skew_ms: int, flagged: bool) -> None:
        self.sql.execute(
            "UPDATE agents SET skew_ms = ?, skew_flagged = ? WHERE site = ? AND agent = ?",
            (skew_ms, int(flagged), site, agent),
        )

    # ------------------------------------------------------------ events

    def insert_events(
        self, site: str, agent: str, epoch: str, boot: str, events: Sequence[Event], received_at: int
    ) -> list[Event]:
        """Store a batch of events and what derives from them; return those not stored before."""
        return self.insert_runs([(site, agent, epoch, boot, events, received_at)])[0]

    def insert_runs(self, runs: Sequence[EventRun]) -> list[list[Event]]:
        """Store several runs of events (site, agent, epoch, boot, events, received_at), at most one per agent, and
        what derives from them; per run, the events not stored before. The ingest hot path: one look-up of the
        known seqs and one insert for all runs. When the database refuses the data of one event, each run is
        stored on its own (`_insert_or_split`), as if it had come alone."""
        news = self._unknown(runs)
        items = [(*run[:4], new, run[5]) for run, new in zip(runs, news, strict=True) if new]
        if len(items) <= 1:
            return [self._insert_or_split(*run[:4], new, run[5]) for run, new in zip(runs, news, strict=True)]
        self.sql.execute("SAVEPOINT insert_runs")
        try:
            self._insert_new(items)
        except DataRejected:
            self.sql.execute("ROLLBACK TO SAVEPOINT insert_runs")
            self.sql.execute("RELEASE SAVEPOINT insert_runs")
            return [self._insert_or_split(*run[:4], new, run[5]) for run, new in zip(runs, news, strict=True)]
        self.sql.execute("RELEASE SAVEPOINT insert_runs")
        return news

    def _unknown(self, runs: Sequence[EventRun]) -> list[list[Event]]:
        """Per run, its events whose seq is neither stored nor refused yet, each seq once (its first event)."""
        ranges = [(*run[:3], min(map(_seq, run[4])), max(map(_seq, run[4]))) for run in runs if run[4]]
        known: dict[tuple[str, str, str], set[int]] = {}
        if ranges:
            match = "x.site = v.site AND x.agent = v.agent AND x.epoch = v.epoch AND x.seq >= v.lo AND x.seq <= v.hi"
            source, params = self.sql.values(_EPOCH_RANGE, ranges)
            for site, agent, epoch, seq in self.sql.tuples(
                f"WITH v (site, agent, epoch, lo, hi) AS ({source})"
                f" SELECT x.site, x.agent, x.epoch, x.seq FROM v CROSS JOIN events x WHERE {match}"
                f" UNION ALL SELECT x.site, x.agent, x.epoch, x.seq FROM v CROSS JOIN refused_events x WHERE {match}",
                params,
            ):
                known.setdefault((site, agent, epoch), set()).add(int(seq))
        news: list[list[Event]] = []
        for site, agent, epoch, _, events, _ in runs:
            seen = known.get((site, agent, epoch))
            seqs = list(map(_seq, events))
            if not seen and len(set(seqs)) == len(seqs):  # the usual case: every event is new
                news.append(list(events))
                continue
            seen = set() if seen is None else seen
            new: list[Event] = []
            for e in events:
                if e.seq not in seen:
                    seen.add(e.seq)
                    new.append(e)
            news.append(new)
        return news

    def _insert_or_split(
        self, site: str, agent: str, epoch: str, boot: str, events: Sequence[Event], received_at: int
    ) -> list[Event]:
        """Insert `events` in one go; when the database refuses the data of one, bisect the batch until each
        refused event stands alone, and dead-letter those (`_reject`). Return the events stored."""
        if not events:
            return []
        self.sql.execute("SAVEPOINT insert_events")
        try:
            self._insert_new([(site, agent, epoch, boot, events, received_at)])
        except DataRejected as exc:
            self.sql.execute("ROLLBACK TO SAVEPOINT insert_events")
            self.sql.execute("RELEASE SAVEPOINT insert_events")
            if len(events) == 1:
                self._reject(site, agent, epoch, events[0], str(exc), received_at)
                return []
            half = len(events) // 2
            return [
                *self._insert_or_split(site, agent, epoch, boot, events[:half], received_at),
                *self._insert_or_split(site, agent, epoch, boot, events[half:], received_at),
            ]
        self.sql.execute("RELEASE SAVEPOINT insert_events")
        return list(events)

    def _reject(self, site: str, agent: str, epoch: str, event: Event, problem: str, received_at: int) -> None:
        reason = clip(f"seq {event.seq}: the store refused the event: {problem}", 1000)
        self.refuse_event(events_topic(site, agent), site, agent, epoch, event, reason, received_at)

    def _insert_new(self, runs: Sequence[EventRun]) -> None:
        """Insert runs of new events (at most one run per agent) and their derived rows, each kind in one
        statement for all runs."""
        # Each event's row holds its body's wire JSON. Metrics, most of the events, derive nothing.
        rows = [
            (site, agent, epoch, e.seq, boot, e.ts, e.type, body, received_at)
            for site, agent, epoch, boot, new, received_at in runs
            for e, body in zip(new, [encode(e.body).decode() for e in new], strict=True)
        ]  # fmt: skip
        changes: list[tuple[Any, ...]] = []
        beats: list[tuple[Any, ...]] = []
        others: list[tuple[str, str, str, Event]] = []
        for site, agent, epoch, _, new, received_at in runs:
            beat: HeartbeatEvent | None = None
            registry: dict[str, str] | None = None
            for e in compress(new, map("metrics".__ne__, map(_type, new))):
                if isinstance(e, HeartbeatEvent):
                    beat = e if beat is None or e.ts > beat.ts else beat
                elif isinstance(e, StateChangeEvent):
                    if registry is None:
                        registry = self.registry_of(site, agent)  # one look-up for all, as asset_of would do
                    c = e.body
                    changes.append((site, agent, epoch, e.seq, c.target, registry.get(c.target) or c.asset
                                    or c.target, c.from_.value, c.to.value, c.reason, c.at, c.cause))  # fmt: skip
                else:
                    others.append((site, agent, epoch, e))
            if beat is not None:
                h = beat.body
                beats.append((site, agent, beat.ts, received_at, h.outbox_depth, h.oldest_unacked_at))
        self.sql.insert_new("events", _EVENT_COLUMNS, _EVENT_KEY, rows)
        # Derived rows, batched: state changes in one statement, heartbeats as one update (each agent's latest).
        if changes:
            self.sql.execute_many(
                "INSERT INTO state_changes (site, agent, epoch, seq, target, asset, from_state, to_state,"
                " reason, at, cause) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                changes,
            )
        if beats:
            source, params = self.sql.values(("TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "BIGINT"), beats)
            self.sql.execute(
                f"WITH v (site, agent, ts, received_at, depth, oldest) AS ({source})"
                " UPDATE agents SET last_heartbeat = v.ts, last_heartbeat_received_at = v.received_at,"
                " outbox_depth = CAST(v.depth AS BIGINT), oldest_unacked_at = CAST(v.oldest AS BIGINT) FROM v"
                " WHERE agents.site = v.site AND agents.agent = v.agent"
                " AND (agents.last_heartbeat IS NULL OR agents.last_heartbeat < v.ts)",
                params,
            )
        for site, agent, epoch, e in others:
            self._derive(site, agent, epoch, e)

    def asset_of(self, site: str, agent: str, target: str, named: str | None = None) -> str:
        """The asset a target belongs to, from the agent's registry (an asset the event names does not count);
        for a target the registry does not know (imported history only): the named asset, else the target id."""
        rows = self.sql.query(
            "SELECT asset FROM targets WHERE site = ? AND agent = ? AND target = ?", (site, agent, target)
        )
        return str(rows[0]["asset"]) if rows else named or target

    def insert_event(self, site: str, agent: str, epoch: str, boot: str, event: Event, received_at: int) -> bool:
        """Store one event and what derives from it; False when (site, agent, epoch, seq) was already stored."""
        return bool(self.insert_events(site, agent, epoch, boot, [event], received_at))

    def _derive(self, site: str, agent: str, epoch: str, event: Event) -> None:
        """The normalized rows one newly stored event adds (incidents, changes, lost ranges)."""
        if isinstance(event, ChangeDetectedEvent):
            c = event.body
            self.sql.execute(
                "INSERT INTO changes (site, agent, epoch, seq, target, asset, what, old_value, new_value, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (site, agent, epoch, event.seq, c.target, self.asset_of(site, agent, c.target, c.asset), c.what,
                 c.old, c.new, c.at),
            )  # fmt: skip
        elif isinstance(event, GapEvent):
            g = event.body
            self.sql.execute(
                "INSERT INTO lost_ranges (site, agent, epoch, from_seq, to_seq, reason) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (site, agent, epoch, from_seq) DO NOTHING",
                (site, agent, epoch, g.from_seq, g.to_seq, g.reason),
            )
        elif isinstance(event, IncidentOpenedEvent | IncidentUpdatedEvent | IncidentResolvedEvent):
            self._incident_event(site, agent, event)
        elif isinstance(event, VersionObservedEvent):
            from collector.change_records import record_observation  # the component imports the store

            asset = self.asset_of(site, agent, event.body.target, event.body.asset)
            record_observation(self.sql, site, agent, epoch, asset, event)

    def incident_owners(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The (site, agent) each of these incidents belongs to: the one whose event first named it."""
        owners: dict[str, tuple[str, str]] = {}
        for chunk in (ids[i : i + _IN_CHUNK] for i in range(0, len(ids), _IN_CHUNK)):
            marks = ", ".join("?" for _ in chunk)
            for r in self.sql.query(f"SELECT id, site, agent FROM incidents WHERE id IN ({marks})", chunk):
                owners[str(r["id"])] = (str(r["site"]), str(r["agent"]))
        return owners

    def _incident_event(
        self, site: str, agent: str, event: IncidentOpenedEvent | IncidentUpdatedEvent | IncidentResolvedEvent
    ) -> None:
        # Events of one incident may arrive out of order (a resent batch): each writes only its own fields.
        placeholder = (
            "INSERT INTO incidents (id, site, agent, kind, targets) VALUES (?, ?, ?, 'target', '[]')"
            " ON CONFLICT (id) DO NOTHING"
        )
        if isinstance(event, IncidentOpenedEvent):
            o = event.body
            self.sql.execute(
                "INSERT INTO incidents (id, site, agent, kind, target, asset, criticality, severity, state,"
                " reason, in_production, targets, opened_at, cause)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, target = excluded.target,"
                " asset = excluded.asset, criticality = excluded.criticality, severity = excluded.severity,"
                " state = excluded.state, reason = excluded.reason, in_production = excluded.in_production,"
                " targets = excluded.targets, opened_at = excluded.opened_at, cause = excluded.cause",
                (
                    o.incident,
                    site,
                    agent,
                    o.kind,
                    o.target,
                    o.asset if o.target is None else self.asset_of(site, agent, o.target, o.asset),
                    o.criticality.value if o.criticality else None,
                    o.severity.value,
                    o.state.value,
                    o.reason,
                    _flag(o.in_production),
                    _json(list(o.targets)),
                    o.opened_at,
                    o.cause,
                ),
            )
            self._severity_step(o.incident, o.opened_at, o.severity.value, o.state.value, o.reason, o.in_production)
        elif isinstance(event, IncidentUpdatedEvent):
            u = event.body
            self.sql.execute(placeholder, (u.incident, site, agent))
            self._severity_step(u.incident, u.at, u.severity.value, u.state.value, u.reason, u.in_production)
        else:
            r = event.body
            self.sql.execute(placeholder, (r.incident, site, agent))
            self.sql.execute(
                "UPDATE incidents SET resolved_at = ?, resolve_reason = ? WHERE id = ?", (r.at, r.reason, r.incident)
            )

    def _severity_step(
        self, incident: str, at: int, severity: str, state: str, reason: str, in_production: bool | None
    ) -> None:
        self.sql.execute(
            "INSERT INTO incident_updates (incident, at, severity, state, reason, in_production)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (incident, at, severity, state) DO NOTHING",
            (incident, at, severity, state, reason, _flag(in_production)),
        )

    # ------------------------------------------------------------ acks

    def lock_ack(self, site: str, agent: str, epoch: str, create: bool) -> int | None:
        """Hold the epoch's ack row until the transaction ends, before anything of the agent is read: a second
        collector storing a batch of the same agent then waits for this one's commit and computes its ack over
        both (under READ COMMITTED each later statement sees what committed meanwhile). `create`: insert the row
        (at 0, as advance_ack would) when missing, so even an epoch's first batches are serialized. Returns the
        epoch's ack (None: no row)."""
        key = (site, agent, epoch)
        if create:
            rows = self.sql.query(
                "INSERT INTO acks (site, agent, epoch, through) VALUES (?, ?, ?, 0)"
                " ON CONFLICT (site, agent, epoch) DO UPDATE SET through = acks.through RETURNING through",
                key,
            )
        else:
            rows = self.sql.query(
                "SELECT through FROM acks WHERE site = ? AND agent = ? AND epoch = ?" + self.sql.for_update(), key
            )
        return int(rows[0]["through"]) if rows else None

    def take_run(self, site: str, agent: str, epoch: str, received_at: int) -> tuple[int, AgentRow | None]:
        """Before a run of the agent's batches is stored: `lock_ack` (creating the row at 0) and then `seen`, the
        ack row first as always. Returns the epoch's ack and the agent's row (None: no birth yet). Where the
        dialect allows it (`Sql.writing_ctes`), both in one statement: the agent row's update waits for the ack's
        upsert (a one-time filter on it), so the rows are locked in the same order as by two statements."""
        if not self.sql.writing_ctes:
            acked = self.lock_ack(site, agent, epoch, create=True)
            return 0 if acked is None else acked, self.seen(site, agent, received_at)
        [row] = self.sql.query(
            "WITH a AS (INSERT INTO acks (site, agent, epoch, through) VALUES (?, ?, ?, 0)"
            " ON CONFLICT (site, agent, epoch) DO UPDATE SET through = acks.through RETURNING through),"
            " s AS (UPDATE agents SET last_seen = CASE WHEN last_seen < ? THEN ? ELSE last_seen END"
            " WHERE site = ? AND agent = ? AND EXISTS (SELECT 1 FROM a) RETURNING *)"
            " SELECT a.through AS lw_acked, s.* FROM a LEFT JOIN s ON TRUE",
            (site, agent, epoch, received_at, received_at, site, agent),
        )
        acked = int(row.pop("lw_acked"))
        return acked, None if row["site"] is None else _agent_row(row)

    def acked_through(self, site: str, agent: str, epoch: str) -> int:
        acked = self.ack_of(site, agent, epoch)
        return 0 if acked is None else acked

    def ack_of(self, site: str, agent: str, epoch: str) -> int | None:
        """The epoch's ack; None when the collector has acked nothing of that epoch yet."""
        rows = self.sql.query(
            "SELECT through FROM acks WHERE site = ? AND agent = ? AND epoch = ?", (site, agent, epoch)
        )
        return int(rows[0]["through"]) if rows else None

    def advance_ack(self, site: str, agent: str, epoch: str, floor: int = 0, acked: int | None = None) -> int:
        """Raise the stored contiguous seq over what is now stored (or reported lost); return it.

        `floor`: a seq the agent says was acked before (its outbox no longer holds those events). `acked`: the ack
        as this transaction holds it (`lock_ack`'s answer, nothing having moved it since), else it is read.
        """
        start = max(self.acked_through(site, agent, epoch) if acked is None else acked, floor)
        key = (site, agent, epoch)
        # Received seqs: stored, or refused (dead-lettered) by admission.
        received = (
            "SELECT seq FROM events WHERE site = ? AND agent = ? AND epoch = ? AND seq > ?"
            " UNION ALL SELECT seq FROM refused_events WHERE site = ? AND agent = ? AND epoch = ? AND seq > ?"
        )
        [stats] = self.sql.query(f"SELECT COUNT(*) AS n, MAX(seq) AS top FROM ({received}) r", (*key, start) * 2)
        if stats["n"] and stats["top"] - start == stats["n"]:  # the usual case: no hole after `start`
            return self._set_ack(key, int(stats["top"]))
        seqs = {int(r["seq"]) for r in self.sql.query(received, (*key, start) * 2)}
        lost = [
            (int(r["from_seq"]), int(r["to_seq"]))
            for r in self.sql.query(
                "SELECT from_seq, to_seq FROM lost_ranges WHERE site = ? AND agent = ? AND epoch = ?"
                " AND to_seq > ? ORDER BY from_seq",
                (*key, start),
            )
        ]
        through = start
        while True:
            nxt = through + 1
            if nxt in seqs:
                through = nxt
                continue
            covering = [hi for lo, hi in lost if lo <= nxt <= hi]
            if not covering:
                break
            through = max(covering)
        return self._set_ack(key, through)

    def advance_acks(self, acks: Sequence[tuple[str, str, str, int]]) -> list[int]:
        """`advance_ack` for several epochs (site, agent, epoch, acked), acked as this transaction holds them: one
        read and one write for all epochs with no hole after their ack (the usual case); return the acks."""
        if not acks:
            return []
        # Per epoch, of its received seqs after the ack (stored, or refused by admission): how many, and the last.
        # Correlated aggregates, each over its index range: a join grouped by epoch sorts every row it finds.
        match = "x.site = v.site AND x.agent = v.agent AND x.epoch = v.epoch AND x.seq > v.acked"
        source, params = self.sql.values(_EPOCH_SEQ, acks)
        stats = {
            (site, agent, epoch): (int(n) + int(refused), max(int(top or 0), int(refused_top or 0)))
            for site, agent, epoch, n, top, refused, refused_top in self.sql.tuples(
                f"WITH v (site, agent, epoch, acked) AS ({source})"
                f" SELECT v.site, v.agent, v.epoch, (SELECT COUNT(*) FROM events x WHERE {match}),"
                f" (SELECT MAX(x.seq) FROM events x WHERE {match}),"
                f" (SELECT COUNT(*) FROM refused_events x WHERE {match}),"
                f" (SELECT MAX(x.seq) FROM refused_events x WHERE {match}) FROM v",
                params,
            )
        }
        throughs, contiguous = [], []
        for site, agent, epoch, acked in acks:
            n, top = stats.get((site, agent, epoch), (0, 0))
            if n and top - acked == n:
                contiguous.append((site, agent, epoch, top))
                throughs.append(top)
            else:
                throughs.append(self.advance_ack(site, agent, epoch, acked=acked))
        if contiguous:
            source, params = self.sql.values(_EPOCH_SEQ, contiguous)
            # WHERE TRUE: without it, SQLite would read ON CONFLICT as a join's ON.
            self.sql.execute(
                f"WITH v (site, agent, epoch, through) AS ({source}) INSERT INTO acks (site, agent, epoch, through)"
                " SELECT site, agent, epoch, through FROM v WHERE TRUE"
                " ON CONFLICT (site, agent, epoch) DO UPDATE SET through = excluded.through",
                params,
            )
        return throughs

    def _set_ack(self, key: tuple[str, str, str], through: int) -> int:
        self.sql.execute(
            "INSERT INTO acks (site, agent, epoch, through) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (site, agent, epoch) DO UPDATE SET through = excluded.through",
            (*key, through),
        )
        return through

    # ------------------------------------------------------------ monitoring gaps

    def gaps_of(self, site: str, agent: str, ending_after: int) -> list[GapRow]:
        """The agent's gaps still open or ending after `ending_after`."""
        rows = self.sql.query(
            "SELECT * FROM gaps WHERE site = ? AND agent = ? AND (end_at IS NULL OR end_at > ?) ORDER BY start_at",
            (site, agent, ending_after),
        )
        return [_gap_row(r) for r in rows]

    def agents_with_gaps(self, agents: Sequence[tuple[str, str, int]]) -> set[tuple[str, str]]:
        """Of these (site, agent, ending_after), the agents that have a gap still open or ending after that time."""
        if not agents:
            return set()
        source, params = self.sql.values(("TEXT", "TEXT", "BIGINT"), agents)
        rows = self.sql.tuples(
            f"WITH v (site, agent, after) AS ({source})"
            " SELECT DISTINCT g.site, g.agent FROM v CROSS JOIN gaps g WHERE g.site = v.site AND g.agent = v.agent"
            " AND (g.end_at IS NULL OR g.end_at > v.after)",
            params,
        )
        return {(str(site), str(agent)) for site, agent in rows}

    def open_gap_of(self, site: str, agent: str) -> GapRow | None:
        rows = self.sql.query("SELECT * FROM gaps WHERE site = ? AND agent = ? AND end_at IS NULL", (site, agent))
        return _gap_row(rows[0]) if rows else None

    def open_gap(self, site: str, agent: str, start: int, reason: str, boot: str) -> bool:
        return bool(
            self.sql.execute(
                "INSERT INTO gaps (site, agent, start_at, end_at, reason, boot) VALUES (?, ?, ?, NULL, ?, ?)"
                " ON CONFLICT (site, agent, start_at) DO NOTHING",
                (site, agent, start, reason, boot),
            )
        )

    def add_gap(self, site: str, agent: str, start: int, end: int, reason: str, boot: str = "") -> bool:
        return bool(
            self.sql.execute(
                "INSERT INTO gaps (site, agent, start_at, end_at, reason, boot) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (site, agent, start_at) DO NOTHING",
                (site, agent, start, end, reason, boot),
            )
        )

    def set_gap(self, gap: GapRow, start: int, end: int | None) -> None:
        self.sql.execute(
            "UPDATE gaps SET start_at = ?, end_at = ? WHERE site = ? AND agent = ? AND start_at = ?",
            (start, end, gap.site, gap.agent, gap.start_at),
        )

    def drop_gap(self, gap: GapRow) -> None:
        self.sql.execute(
            "DELETE FROM gaps WHERE site = ? AND agent = ? AND start_at = ?", (gap.site, gap.agent, gap.start_at)
        )

    # ------------------------------------------------------------ dead letters

    def add_dead_letter(
        self, topic: str, payload: bytes, reason: str, received_at: int, site: str | None, agent: str | None
    ) -> None:
        # No NUL in any text column (PostgreSQL refuses it): the junk that brought one here must still be kept.
        text = payload[: MAX_DEAD_LETTER_CHARS * 4].decode("utf-8", errors="backslashreplace")
        text = text.replace("\x00", "\\x00")[:MAX_DEAD_LETTER_CHARS]
        self.sql.execute(
            "INSERT INTO dead_letters (topic, site, agent, payload, reason, received_at) VALUES (?, ?, ?, ?, ?, ?)",
            (clip(topic, 1000), site, agent, text, clip(reason, 1000), received_at),
        )
        self.sql.execute(
            "INSERT INTO counters (name, value) VALUES (?, 1)"
            " ON CONFLICT (name) DO UPDATE SET value = counters.value + 1",
            (DEAD_LETTER_COUNTER,),
        )

    def refuse_event(
        self, topic: str, site: str, agent: str, epoch: str, event: Event, reason: str, received_at: int
    ) -> None:
        """Dead-letter one received event with the reason and remember its seq as received, for the ack."""
        self.add_dead_letter(topic, encode(event), reason, received_at, site, agent)
        if (read := self._refused.get((site, agent, epoch))) is not None:
            read[2].add(event.seq)
        self.sql.execute(
            "INSERT INTO refused_events (site, agent, epoch, seq, reason, received_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (site, agent, epoch, seq) DO NOTHING",
            (site, agent, epoch, event.seq, reason, received_at),
        )

    def prefetch_screening(self, ranges: Sequence[tuple[str, str, str, int, int]]) -> None:
        """Read what admission reads of these epochs' agents, for all of them at once: their registries and their
        refused seqs in [lo, hi] (site, agent, epoch, lo, hi). Call it only with the epochs' ack rows locked
        (`lock_ack`): only the holder of that lock refuses an agent's events, and `refuse_event` keeps what was
        read up to date."""
        if not ranges:
            return
        agents = sorted({(site, agent) for site, agent, *_ in ranges} - self._registries.keys())
        if agents:
            registries: dict[tuple[str, str], dict[str, str]] = {a: {} for a in agents}
            source, params = self.sql.values(("TEXT", "TEXT"), agents)
            for site, agent, target, asset in self.sql.tuples(
                f"WITH v (site, agent) AS ({source}) SELECT t.site, t.agent, t.target,"
                " t.asset FROM v CROSS JOIN targets t WHERE t.site = v.site AND t.agent = v.agent",
                params,
            ):
                registries[(site, agent)][str(target)] = str(asset)
            self._registries.update(registries)
        refused: dict[tuple[str, str, str], tuple[int, int, set[int]]] = {r[:3]: (r[3], r[4], set()) for r in ranges}
        source, params = self.sql.values(_EPOCH_RANGE, ranges)
        for site, agent, epoch, seq in self.sql.tuples(
            f"WITH v (site, agent, epoch, lo, hi) AS ({source})"
            " SELECT x.site, x.agent, x.epoch, x.seq FROM v CROSS JOIN refused_events x WHERE x.site = v.site"
            " AND x.agent = v.agent AND x.epoch = v.epoch AND x.seq >= v.lo AND x.seq <= v.hi",
            params,
        ):
            refused[(site, agent, epoch)][2].add(int(seq))
        self._refused.update(refused)

    def refused_seqs(self, site: str, agent: str, epoch: str, lo: int, hi: int) -> set[int]:
        read = self._refused.get((site, agent, epoch))
        if read is not None and read[0] <= lo and hi <= read[1]:
            return {seq for seq in read[2] if lo <= seq <= hi}
        rows = self.sql.query(
            "SELECT seq FROM refused_events WHERE site = ? AND agent = ? AND epoch = ? AND seq >= ? AND seq <= ?",
            (site, agent, epoch, lo, hi),
        )
        return {int(r["seq"]) for r in rows}

    # ------------------------------------------------------------ batches held for their boot's birth

    def hold_batch(
        self,
        key: tuple[str, str, str, str],
        seqs: tuple[int, int],
        payload: bytes,
        received_at: int,
        per_agent: int,
        in_all: int,
    ) -> bool:
        """Hold a batch of `key` (site, agent, epoch, boot) with seqs (first, last) for its boot's birth, unless
        that would hold more than `per_agent` batches of its agent or `in_all` in all; False when it is not held.
        The same batch held again is held once (True)."""
        site, agent = key[:2]
        [row] = self.sql.query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN site = ? AND agent = ? THEN 1 ELSE 0 END), 0) AS mine,"
            " COALESCE(MAX(CASE WHEN site = ? AND agent = ? AND epoch = ? AND boot = ? AND first_seq = ?"
            " AND last_seq = ? THEN 1 ELSE 0 END), 0) AS again FROM held_batches",
            (site, agent, *key, *seqs),
        )
        if row["again"]:
            return True
        if row["mine"] >= per_agent or row["n"] >= in_all:
            return False
        self.sql.execute(
            "INSERT INTO held_batches (site, agent, epoch, boot, first_seq, last_seq, payload, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (*key, *seqs, payload.decode(), received_at),
        )
        return True

    def take_held(self, key: tuple[str, str, str, str], received_before: int | None = None) -> list[HeldBatch]:
        """Remove and return the batches held for `key` (site, agent, epoch, boot), in seq order; only those
        received before `received_before` when given. Call it with the epoch's ack row locked (`lock_ack`)."""
        older = "" if received_before is None else " AND received_at < ?"
        rows = self.sql.tuples(
            "DELETE FROM held_batches WHERE site = ? AND agent = ? AND epoch = ? AND boot = ?"
            + older
            + " RETURNING first_seq, last_seq, payload, received_at",
            (*key, *([] if received_before is None else [received_before])),
        )
        return [HeldBatch(str(p).encode(), int(at)) for _, _, p, at in sorted(rows, key=lambda r: (r[0], r[1]))]

    # ------------------------------------------------------------ collector-side records

    def add_ticket_record(
        self, incident: str, kind: str, at: int, actor: str, details: dict[str, Any], source: str
    ) -> bool:
        """Idempotent by (incident, contract, kind, at); the contract is `details["contract"]` ('' if none)."""
        contract = str(details.get("contract", ""))
        return bool(
            self.sql.execute(
                "INSERT INTO ticket_records (incident, contract, kind, at, actor, details, source)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (incident, contract, kind, at) DO NOTHING",
                (incident, contract, kind, at, actor, _json(details), source),
            )
        )

    def add_maintenance_window(
        self, site: str, w: MaintenanceWindowWire, cancelled_at: int | None, recorded_at: int | None = None,
        backdate_reason: str = "",
    ) -> bool:
        return bool(
            self.sql.execute(
                "INSERT INTO maintenance_windows (id, site, kind, start_at, end_at, assets, services, announced_at,"
                " announced_by, reason, cancelled_at, whole_site, lines, asset_classes, recorded_at, backdate_reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (
                    w.id,
                    site,
                    w.kind,
                    w.start,
                    w.end,
                    _json(list(w.assets)),
                    _json(list(w.services)),
                    w.announced_at,
                    w.announced_by,
                    w.reason,
                    cancelled_at,
                    int(w.whole_site),
                    _json(list(w.lines)),
                    _json([c.value for c in w.asset_classes]),
                    recorded_at,
                    backdate_reason,
                ),
            )
        )

    def cancel_maintenance_window(self, window_id: str, at: int) -> bool:
        """Mark a window cancelled at `at`; False when there is no such window or it was already cancelled."""
        return bool(
            self.sql.execute(
                "UPDATE maintenance_windows SET cancelled_at = ? WHERE id = ? AND cancelled_at IS NULL",
                (at, window_id),
            )
        )


class Store(ABC):
    """The collector's repository. Open one with `collector.store.open_store`."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Writer]:
        """One write transaction: committed when the block ends, rolled back when it raises."""

    @abstractmethod
    def _read(self) -> AbstractContextManager[Sql]: ...

    def _read_consistent(self) -> AbstractContextManager[Sql]:
        """A read whose statements all see the database as of one moment (a read-only transaction), for reads
        that join their statements' rows; inside a transaction already, that transaction."""
        return self._read()

    def reader(self) -> AbstractContextManager[Sql]:
        """A read on the store's connection, for components that keep tables of their own (ticketing, audit)."""
        return self._read()

    @abstractmethod
    def table_names(self) -> list[str]:
        """Every table in the database, sorted."""

    @abstractmethod
    def table_columns(self, table: str) -> list[str]:
        """The columns of one table, in table order."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[Snapshot]:
        """A read-only view of the whole database as of one moment, while the block runs."""

    def after_bulk_load(self, tx: Writer) -> None:
        """Rows went in with their own auto-numbered ids (an archive import): the next number follows them."""
        return None  # SQLite numbers on from the largest id by itself

    @property
    @abstractmethod
    def id_column(self) -> str:
        """The dialect's spelling of an auto-numbered integer primary key (the `{id}` macro)."""

    # ------------------------------------------------------------ schema

    def migrate(self, migrations: Sequence[Migration] | None = None) -> list[tuple[str, int]]:
        """Apply what is not applied yet, each migration in its own transaction; return what was applied."""
        with self.transaction() as tx:
            tx.sql.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT NOT NULL, version INTEGER NOT NULL,"
                " PRIMARY KEY (component, version))"
            )
            done = {(r["component"], int(r["version"])) for r in tx.sql.query("SELECT * FROM schema_migrations")}
        applied = []
        for m in all_migrations() if migrations is None else migrations:
            if (m.component, m.version) in done:
                continue
            with self.transaction() as tx:
                for stmt in statements(m.sql.replace("{id}", self.id_column)):
                    tx.sql.execute(stmt)
                tx.sql.execute(
                    "INSERT INTO schema_migrations (component, version) VALUES (?, ?)", (m.component, m.version)
                )
            applied.append((m.component, m.version))
        return applied

    # ------------------------------------------------------------ agents, acks, dead letters

    def agents(self) -> list[AgentRow]:
        with self._read() as sql:
            return [_agent_row(r) for r in sql.query("SELECT * FROM agents ORDER BY site, agent")]

    def open_gaps(self) -> list[GapRow]:
        with self._read() as sql:
            return [_gap_row(r) for r in sql.query("SELECT * FROM gaps WHERE end_at IS NULL ORDER BY site, agent")]

    def acked_through(self, site: str, agent: str, epoch: str) -> int:
        with self._read() as sql:
            return Writer(sql).acked_through(site, agent, epoch)

    def held_boots(self, received_before: int) -> list[tuple[str, str, str, str]]:
        """The (site, agent, epoch, boot) of batches held since before `received_before`, in agent order."""
        with self._read() as sql:
            rows = sql.tuples(
                "SELECT DISTINCT site, agent, epoch, boot FROM held_batches WHERE received_at < ?"
                " ORDER BY site, agent, epoch, boot",
                (received_before,),
            )
            return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]

    def held_counts(self) -> dict[tuple[str, str], int]:
        """Batches held for a birth, per (site, agent)."""
        with self._read() as sql:
            rows = sql.tuples("SELECT site, agent, COUNT(*) FROM held_batches GROUP BY site, agent")
            return {(str(site), str(agent)): int(n) for site, agent, n in rows}

    def oldest_held(self) -> int | None:
        """When the batch held longest was received (None: none is held)."""
        with self._read() as sql:
            [row] = sql.query("SELECT MIN(received_at) AS at FROM held_batches")
            return None if row["at"] is None else int(row["at"])

    def dead_letter_total(self) -> int:
        with self._read() as sql:
            rows = sql.query("SELECT value FROM counters WHERE name = ?", (DEAD_LETTER_COUNTER,))
            return int(rows[0]["value"]) if rows else 0

    def dead_letter_counts(self) -> dict[tuple[str, str], int]:
        """Dead letters per (site, agent), for topics that named one."""
        with self._read() as sql:
            rows = sql.query(
                "SELECT site, agent, COUNT(*) AS n FROM dead_letters WHERE site IS NOT NULL GROUP BY site, agent"
            )
            return {(r["site"], r["agent"]): int(r["n"]) for r in rows}

    def dead_letters(self, limit: int = 100) -> list[DeadLetterRow]:
        with self._read() as sql:
            rows = sql.query("SELECT * FROM dead_letters ORDER BY id DESC LIMIT ?", (limit,))
            return [DeadLetterRow(**r) for r in rows]

    # ------------------------------------------------------------ the SLA engine's view of a period

    def registry(self) -> list[TargetRow]:
        with self._read() as sql:
            return [
                TargetRow(*r)
                for r in sql.tuples(
                    "SELECT site, agent, target, kind, asset, criticality, first_seen, last_seen FROM targets"
                    " ORDER BY site, agent, target"
                )
            ]

    def state_changes(self, start: int, end: int) -> list[StateChangeRow]:
        """Per target, the last change before `start` (its state entering the period), then all in [start, end)."""
        cols = "s.site, s.agent, s.target, s.asset, s.from_state, s.to_state, s.reason, s.at, s.cause"
        with self._read() as sql:
            before = sql.tuples(
                f"SELECT {cols} FROM state_changes s JOIN (SELECT site, agent, target, MAX(at) AS at"
                " FROM state_changes WHERE at < ? GROUP BY site, agent, target) p"
                " ON s.site = p.site AND s.agent = p.agent AND s.target = p.target AND s.at = p.at",
                (start,),
            )
            inside = sql.tuples(f"SELECT {cols} FROM state_changes s WHERE s.at >= ? AND s.at < ?", (start, end))
        rows = [StateChangeRow(*r) for r in before + inside]
        return sorted(rows, key=lambda r: (r.site, r.agent, r.target, r.at))

    def gaps(self, start: int, end: int) -> list[GapRow]:
        """Monitoring gaps overlapping [start, end); open gaps have end_at None."""
        with self._read() as sql:
            rows = sql.query(
                "SELECT * FROM gaps WHERE start_at < ? AND (end_at IS NULL OR end_at > ?) ORDER BY start_at",
                (end, start),
            )
            return [_gap_row(r) for r in rows]

    def maintenance_windows(self, start: int, end: int) -> list[MaintenanceWindowRow]:
        """Windows overlapping [start, end), cancelled ones included (with cancelled_at)."""
        with self._read() as sql:
            rows = sql.query(
                "SELECT * FROM maintenance_windows WHERE start_at < ? AND end_at > ? ORDER BY start_at, id",
                (end, start),
            )
        return [
            MaintenanceWindowRow(
                **{
                    **r,
                    **{k: tuple(json.loads(r[k])) for k in ("assets", "services", "lines", "asset_classes")},
                    "whole_site": bool(r["whole_site"]),
                }
            )
            for r in rows
        ]

    def changes(self, start: int, end: int) -> list[ChangeRow]:
        with self._read() as sql:
            rows = sql.tuples(
                "SELECT site, agent, target, asset, what, old_value, new_value, at FROM changes"
                " WHERE at >= ? AND at < ? ORDER BY at",
                (start, end),
            )
            return [ChangeRow(*r) for r in rows]

    def incidents(self, start: int, end: int) -> list[IncidentRow]:
        """Incidents open at any time in [start, end), with severity history and ticket records.

        Three set-based reads (the incidents, then the steps and records of the incidents the same condition
        selects): no list of ids as parameters, so no limit on their number, and one round trip each."""
        chosen = "(i.opened_at IS NULL OR i.opened_at < ?) AND (i.resolved_at IS NULL OR i.resolved_at >= ?)"
        with self._read_consistent() as sql:  # the three statements select the same incidents
            rows = sql.tuples(
                "SELECT i.id, i.site, i.agent, i.kind, i.target, i.asset, i.criticality, i.severity, i.reason,"
                f" i.opened_at, i.resolved_at, i.resolve_reason, i.targets, i.cause FROM incidents i WHERE {chosen}"
                " ORDER BY i.opened_at, i.id",
                (end, start),
            )
            steps: dict[str, list[SeverityStep]] = {r[0]: [] for r in rows}
            tickets: dict[str, list[TicketRecordRow]] = {r[0]: [] for r in rows}
            for incident, at, severity, state, reason, in_production in sql.tuples(
                "SELECT u.incident, u.at, u.severity, u.state, u.reason, u.in_production FROM incident_updates u"
                f" WHERE u.incident IN (SELECT i.id FROM incidents i WHERE {chosen})"
                " ORDER BY u.at, u.incident, u.severity, u.state",
                (end, start),
            ):
                if (found := steps.get(incident)) is not None:  # an incident stored since the first read: not ours
                    found.append(SeverityStep(at, severity, state, reason, _bool(in_production)))
            parsed: dict[str, dict[str, Any]] = {}
            for incident, contract, kind, at, actor, details, source in sql.tuples(
                "SELECT t.incident, t.contract, t.kind, t.at, t.actor, t.details, t.source FROM ticket_records t"
                f" WHERE t.incident IN (SELECT i.id FROM incidents i WHERE {chosen})"
                " ORDER BY t.at, t.incident, t.contract, t.kind",
                (end, start),
            ):
                if (records := tickets.get(incident)) is None:
                    continue
                # Many records carry the same details (`{}`, one contract's id): each text is parsed once, and
                # every record gets its own copy.
                known = parsed.get(details)
                if known is None:
                    known = parsed[details] = json.loads(details)
                records.append(TicketRecordRow(incident, contract, kind, at, actor, dict(known), source))
        targets = {text: tuple(json.loads(text)) for text in {r[12] for r in rows}}  # one asset's are all alike
        return [
            IncidentRow(
                id=r[0], site=r[1], agent=r[2], kind=r[3], target=r[4], asset=r[5], criticality=r[6], severity=r[7],
                reason=r[8], opened_at=r[9], resolved_at=r[10], resolve_reason=r[11], targets=targets[r[12]],
                severity_history=tuple(steps[r[0]]), tickets=tuple(tickets[r[0]]), cause=r[13],
            )
            for r in rows
        ]

    def period(self, start: int, end: int) -> PeriodData:
        return PeriodData(
            start=start,
            end=end,
            state_changes=tuple(self.state_changes(start, end)),
            gaps=tuple(self.gaps(start, end)),
            maintenance_windows=tuple(self.maintenance_windows(start, end)),
            incidents=tuple(self.incidents(start, end)),
            changes=tuple(self.changes(start, end)),
            targets=tuple(self.registry()),
        )

    # ------------------------------------------------------------ export

    def table_rows(self, table: str) -> list[Row]:
        """All rows of one table, a name from `table_names()` (anything else is refused)."""
        if table not in self.table_names():
            raise StoreError(f"no such table: {table}")
        with self._read() as sql:
            return sql.query(f"SELECT * FROM {table}")
