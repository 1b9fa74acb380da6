"""Retention: prune what the store need not keep any more, archiving it to a file first (docs/retention.md).

Two horizons, measured back from `now`:
- raw: metrics and heartbeat events and dead letters older than `retention.raw` are removed; the metrics and
  heartbeats are first added to `metric_rollups`, one row per target per hour (heartbeats under target '');
- records: what a reported figure depends on (state changes, gaps, maintenance windows, changes, incidents with
  their severity steps and ticket records, the other events) is kept for `contract_term` plus
  `years_after_term` years, plus the reports' look-back, so every report of a month that starts inside the
  horizon reads exactly what it read before. Of each target the latest state change is always kept (the state
  it is in); open gaps and unresolved incidents are never removed.

Each prune writes one archive, `prune-<UTC time>.jsonl.gz` (`-<n>` added beside one of the same time): one JSON
object per removed row, `{"table": ..., "row": {...}}`. Rows go in chunks: a chunk is written, flushed and fsynced
before the transaction that deletes exactly those rows commits, so a crash between the two leaves rows that a
later prune archives again, never a row removed unarchived.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from collector.reporting import LOOKBACK_MS
from collector.store.base import Store, Writer
from collector.store.migrations import Migration
from linewarden.config.collector import CollectorConfig, RetentionConfig

log = logging.getLogger(__name__)

MIGRATIONS: list[Migration] = [
    Migration(
        "retention",
        1,
        """
CREATE TABLE metric_rollups (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    target TEXT NOT NULL,
    hour BIGINT NOT NULL,
    metrics BIGINT NOT NULL,
    probes BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    latency_max_ms DOUBLE PRECISION,
    heartbeats BIGINT NOT NULL,
    PRIMARY KEY (site, agent, target, hour)
);
""",
    )
]

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
CHUNK = 2000
STAMP = "%Y%m%dT%H%M%S%fZ"
RAW_TYPES = "('metrics', 'heartbeat')"
_INCIDENT_GONE = "SELECT id FROM incidents WHERE resolved_at IS NOT NULL AND resolved_at < ?"


@dataclass(frozen=True)
class Rule:
    """Rows of `table` matching `where` (alias `r`, one `?` per param: the cut-off) go; `key` names a row."""

    table: str
    key: tuple[str, ...]
    where: str
    raw: bool  # the raw horizon, else the records'


RULES = (
    Rule("events", ("site", "agent", "epoch", "seq"), f"r.type IN {RAW_TYPES} AND r.ts < ?", raw=True),
    Rule("dead_letters", ("id",), "r.received_at < ?", raw=True),
    Rule("events", ("site", "agent", "epoch", "seq"), f"r.type NOT IN {RAW_TYPES} AND r.ts < ?", raw=False),
    Rule(
        "state_changes",
        ("site", "agent", "epoch", "seq"),
        "r.at < ? AND r.at < (SELECT MAX(l.at) FROM state_changes l"
        " WHERE l.site = r.site AND l.agent = r.agent AND l.target = r.target)",
        raw=False,
    ),
    Rule("changes", ("site", "agent", "epoch", "seq"), "r.at < ?", raw=False),
    Rule("gaps", ("site", "agent", "start_at"), "r.end_at IS NOT NULL AND r.end_at < ?", raw=False),
    Rule("maintenance_windows", ("id",), "r.end_at < ?", raw=False),
    Rule("ticket_records", ("incident", "contract", "kind", "at"), f"r.incident IN ({_INCIDENT_GONE})", raw=False),
    Rule("incident_updates", ("incident", "at", "severity", "state"), f"r.incident IN ({_INCIDENT_GONE})", False),
    Rule("incidents", ("id",), "r.resolved_at IS NOT NULL AND r.resolved_at < ?", raw=False),
)


@dataclass(frozen=True)
class Horizons:
    raw: int  # ms: raw rows measured before this go
    records: int  # ms: records that ended before this go


def horizons(config: RetentionConfig, now: int) -> Horizons:
    records = config.contract_term + timedelta(days=366 * config.years_after_term)
    return Horizons(raw=now - _ms(config.raw), records=now - _ms(records) - LOOKBACK_MS)


def _ms(d: timedelta) -> int:
    return int(d.total_seconds() * 1000)


@dataclass
class PruneResult:
    horizons: Horizons
    removed: dict[str, int] = field(default_factory=dict)  # table -> rows (to be) removed
    rollups: int = 0  # rollup rows written or added to
    archive: Path | None = None  # None on a dry run, or when nothing was removed


def archive_dir(config: CollectorConfig) -> Path:
    return config.retention.archive_dir or config.collector.data_dir / "archive"


def prune(store: Store, config: CollectorConfig, now: int, dry_run: bool = False) -> PruneResult:
    """Remove (or with `dry_run`, count) what is past its horizon, archiving it first."""
    result = PruneResult(horizons(config.retention, now))
    if dry_run:
        with store.reader() as sql:
            for rule in RULES:
                n = sql.query(f"SELECT COUNT(*) AS n FROM {rule.table} r WHERE {rule.where}", (_cut(rule, result),))
                result.removed[rule.table] = result.removed.get(rule.table, 0) + int(n[0]["n"])
        return result
    directory = archive_dir(config)
    directory.mkdir(parents=True, exist_ok=True)
    path, raw = _new_archive(directory, now)
    with raw, gzip.GzipFile(fileobj=raw, mode="wb") as gz:
        for rule in RULES:
            while True:
                with store.transaction() as tx:
                    rows = tx.sql.query(
                        f"SELECT * FROM {rule.table} r WHERE {rule.where} LIMIT {CHUNK}", (_cut(rule, result),)
                    )
                    if not rows:
                        break
                    _write(gz, raw, rule.table, rows)
                    if rule.table == "events" and rule.raw:
                        result.rollups += _roll_up(tx, rows)
                    key = " AND ".join(f"{k} = ?" for k in rule.key)
                    tx.sql.execute_many(
                        f"DELETE FROM {rule.table} WHERE {key}", [[r[k] for k in rule.key] for r in rows]
                    )
                result.removed[rule.table] = result.removed.get(rule.table, 0) + len(rows)
    _fsync_dir(directory)
    if any(result.removed.values()):
        result.archive = path
        log.info("pruned %s; archived in %s", _summary(result), path)
    else:
        path.unlink()
    return result


def _new_archive(directory: Path, now: int) -> tuple[Path, IO[bytes]]:
    """A file of its own for this prune: `prune-<time>.jsonl.gz`, or `prune-<time>-<n>.jsonl.gz` beside one."""
    stamp = datetime.fromtimestamp(now / 1000, UTC).strftime(STAMP)
    for n in range(1000):
        path = directory / f"prune-{stamp}{f'-{n}' if n else ''}.jsonl.gz"
        try:
            return path, open(path, "xb")  # closed by the caller's with
        except FileExistsError:
            continue
    raise FileExistsError(f"{directory}: 1000 archives of {stamp} already")


def _cut(rule: Rule, result: PruneResult) -> int:
    return result.horizons.raw if rule.raw else result.horizons.records


def _write(gz: gzip.GzipFile, raw: IO[bytes], table: str, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        gz.write(json.dumps({"table": table, "row": row}, separators=(",", ":")).encode() + b"\n")
    gz.flush()  # a full zlib flush: what is written so far decompresses on its own
    raw.flush()
    os.fsync(raw.fileno())


def _fsync_dir(directory: Path) -> None:
    if os.name == "posix":
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _roll_up(tx: Writer, rows: list[dict[str, Any]]) -> int:
    """Add raw metrics and heartbeat rows to their hours' rollups; return how many rollup rows changed."""
    sums: dict[tuple[str, str, str, int], list[Any]] = {}
    for r in rows:
        body = json.loads(r["body"])
        if r["type"] == "metrics":
            key = (r["site"], r["agent"], str(body["target"]), int(body["minute"]) // HOUR_MS * HOUR_MS)
            s = sums.setdefault(key, [0, 0, 0, None, 0])
            s[0] += 1
            s[1] += int(body["probes"])
            s[2] += int(body["failures"])
            s[3] = _max(s[3], body.get("latency_max_ms"))
        else:
            key = (r["site"], r["agent"], "", int(r["ts"]) // HOUR_MS * HOUR_MS)
            sums.setdefault(key, [0, 0, 0, None, 0])[4] += 1
    for (site, agent, target, hour), s in sums.items():
        before = tx.sql.query(
            "SELECT * FROM metric_rollups WHERE site = ? AND agent = ? AND target = ? AND hour = ?",
            (site, agent, target, hour),
        )
        if before:
            b = before[0]
            s = [s[0] + b["metrics"], s[1] + b["probes"], s[2] + b["failures"], _max(s[3], b["latency_max_ms"]),
                 s[4] + b["heartbeats"]]  # fmt: skip
        tx.sql.execute(
            "INSERT INTO metric_rollups (site, agent, target, hour, metrics, probes, failures, latency_max_ms,"
            " heartbeats) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, agent, target, hour) DO UPDATE SET"
            " metrics = excluded.metrics, probes = excluded.probes, failures = excluded.failures,"
            " latency_max_ms = excluded.latency_max_ms, heartbeats = excluded.heartbeats",
            (site, agent, target, hour, *s),
        )
    return len(sums)


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _summary(result: PruneResult) -> str:
    return ", ".join(f"{t} {n}" for t, n in result.removed.items() if n) or "nothing"


def archived(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(table, row) of each line of an archive."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            item = json.loads(line)
            yield item["table"], item["row"]


def next_prune_after(config: CollectorConfig, last: int) -> int:
    """When the schedule prunes next: `every` after the later of `last` and the newest archive's time."""
    stamps = [last]
    for p in archive_dir(config).glob("prune-*.jsonl.gz"):
        try:
            stamp = p.name[len("prune-") : -len(".jsonl.gz")].split("-")[0]
            at = datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)
        except ValueError:
            continue
        stamps.append(int(at.timestamp() * 1000))
    return max(stamps) + _ms(config.retention.every)
