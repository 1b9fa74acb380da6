"""The "remote_access" component: vendor remote sessions (jump host, VPN gateway) as received, and the JSON
Lines reader. A session is keyed by (gateway, id); its start and end may arrive in either order and repeat."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from collector.remote_access.syslog import SessionEvent, SyslogError, parse_time, session_event
from collector.store.base import Sql, Store
from collector.store.migrations import Migration
from linewarden.sla.remote_sessions import Session

_V1 = """
CREATE TABLE remote_sessions (
    gateway TEXT NOT NULL,
    id TEXT NOT NULL,
    user_name TEXT,
    source TEXT,
    asset TEXT,
    start_at BIGINT,
    end_at BIGINT,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (gateway, id)
);
CREATE INDEX remote_sessions_start ON remote_sessions (start_at)
"""

MIGRATIONS: list[Migration] = [Migration("remote_access", 1, _V1)]
COUNTER = "remote_access_records"


def record(sql: Sql, e: SessionEvent, received_at: int) -> None:
    """Merge one session event into its session: the earliest start, the latest end, the first names."""
    start, end = (e.at_ms, None) if e.kind == "start" else (None, e.at_ms)
    sql.execute(
        "INSERT INTO remote_sessions (gateway, id, user_name, source, asset, start_at, end_at, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gateway, id) DO UPDATE SET"
        " user_name = COALESCE(remote_sessions.user_name, excluded.user_name),"
        " source = COALESCE(remote_sessions.source, excluded.source),"
        " asset = COALESCE(remote_sessions.asset, excluded.asset),"
        " start_at = CASE WHEN remote_sessions.start_at IS NULL OR excluded.start_at < remote_sessions.start_at"
        " THEN COALESCE(excluded.start_at, remote_sessions.start_at) ELSE remote_sessions.start_at END,"
        " end_at = CASE WHEN remote_sessions.end_at IS NULL OR excluded.end_at > remote_sessions.end_at"
        " THEN COALESCE(excluded.end_at, remote_sessions.end_at) ELSE remote_sessions.end_at END",
        (e.gateway, e.session, e.user, e.source, e.asset, start, end, received_at),
    )
    sql.execute(
        "INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = counters.value + 1",
        (COUNTER,),
    )


def sessions(store: Store, start_ms: int, end_ms: int) -> list[Session]:
    """Sessions with a start and an asset that overlap [start_ms, end_ms) (one still open overlaps from its start)."""
    with store.reader() as sql:
        rows = sql.query(
            "SELECT * FROM remote_sessions WHERE start_at IS NOT NULL AND asset IS NOT NULL AND start_at < ?"
            " AND (end_at IS NULL OR end_at >= ?) ORDER BY start_at, gateway, id",
            (end_ms, start_ms),
        )
    return [_session(r) for r in rows]


def _session(r: dict[str, Any]) -> Session:
    start, end = int(r["start_at"]), r["end_at"]
    return Session(
        str(r["id"]), str(r["gateway"]), str(r["user_name"] or ""), str(r["source"] or ""), str(r["asset"]), start,
        None if end is None else max(int(end), start),
    )


def _time(value: object, name: str) -> int:
    if isinstance(value, bool) or value is None:
        raise SyslogError(f"{name} must be a time (ISO 8601 with a zone, or ms since the epoch)")
    if isinstance(value, int):
        if not 0 <= value <= 253_402_300_799_999:
            raise SyslogError(f"{name} is out of range")
        return value
    if isinstance(value, str):
        return parse_time(value)
    raise SyslogError(f"{name} must be a time (ISO 8601 with a zone, or ms since the epoch)")


def _text(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SyslogError(f"{key} must be a string")
    return value


def json_events(line: bytes) -> list[SessionEvent]:
    """The events of one JSON line: {gateway, id, user, source, asset, start, end?}; `end` alone ends one.
    Raises SyslogError."""
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise SyslogError("not JSON") from None
    if not isinstance(obj, dict):
        raise SyslogError("a line must be a JSON object")
    unknown = set(obj) - {"gateway", "id", "user", "source", "asset", "start", "end"}
    if unknown:
        raise SyslogError(f"unknown keys: {', '.join(sorted(unknown)[:5])}")
    gateway, session = _text(obj, "gateway"), _text(obj, "id")
    if not gateway:
        raise SyslogError("the record has no gateway")
    user, source, asset = _text(obj, "user"), _text(obj, "source"), _text(obj, "asset")
    out = []
    if "start" in obj:
        out.append(session_event(gateway, session, "start", _time(obj["start"], "start"), user, source, asset))
    if obj.get("end") is not None:
        out.append(session_event(gateway, session, "end", _time(obj["end"], "end"), user, source, asset))
    if not out:
        raise SyslogError("the record has neither start nor end")
    return out


def read_lines(stream: IO[bytes], max_bytes: int) -> Iterator[tuple[int, bytes, str | None]]:
    """(line number, line, why it is too long or None): a line over `max_bytes` is cut and its rest skipped."""
    number = 0
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        number += 1
        if len(line) > max_bytes and not line.endswith(b"\n"):
            while True:
                rest = stream.readline(max_bytes)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, line[:max_bytes], f"line over {max_bytes} bytes"
            continue
        yield number, line, None


@dataclass
class ImportResult:
    sessions: int = 0
    skipped: int = 0


def import_jsonl(store: Store, stream: IO[bytes], name: str, max_bytes: int, now_ms: int) -> ImportResult:
    """Record every session event of a JSON Lines file; a bad line is dead-lettered (topic `remote-access/jsonl`)
    with its number and skipped."""
    result = ImportResult()
    for number, line, too_long in read_lines(stream, max_bytes):
        if not line.strip():
            continue
        try:
            if too_long:
                raise SyslogError(too_long)
            events = json_events(line)
        except SyslogError as exc:
            result.skipped += 1
            with store.transaction() as tx:
                tx.add_dead_letter("remote-access/jsonl", line, f"{name} line {number}: {exc}", now_ms, None, None)
            continue
        with store.transaction() as tx:
            for e in events:
                record(tx.sql, e, now_ms)
        result.sessions += 1
    return result
