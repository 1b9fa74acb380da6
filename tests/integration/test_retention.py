"""Retention: `collector prune` removes exactly what is past its horizon, archives it first, and changes no figure
of a report inside the horizon."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector import retention
from collector.reporting import reports
from collector.service import CollectorService
from collector.store import Store, open_store
from linewarden.book import load_book
from linewarden.cli import main
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from linewarden.wire import MaintenanceWindowWire
from tests.integration.review_helpers import imported_config
from tests.integration.store_params import STORES
from tests.integration.test_collector_cli import ms
from tests.waiting import async_wait_until

NOW = ms("2026-12-15T00:00:00")  # raw horizon 2026-09-16; records horizon late 2021 (the defaults)
OLD = "2019-03-01T00:00:00"


def _line(seq: int, at: str, type_: str, body: dict[str, Any]) -> str:
    return json.dumps({"site": "p1", "agent": "a1", "seq": seq, "ts": ms(at), "type": type_, "body": body})


def _metrics(seq: int, at: str) -> str:
    minute = ms(at)
    body = {"target": "plc", "minute": minute, "probes": 12, "failures": seq % 3, "latency_max_ms": float(seq)}
    return _line(seq, at, "metrics", body)


def _change(seq: int, at: str, frm: str, to: str) -> str:
    body = {"target": "old", "asset": "old-asset", "from": frm, "to": to, "reason": "r", "at": ms(at)}
    return _line(seq, at, "state_change", body)


EXTRA = [
    _metrics(6, "2026-09-10T08:10:00"),
    _metrics(7, "2026-09-10T08:20:00"),
    _metrics(8, "2026-12-10T08:00:00"),
    _line(9, "2026-09-10T08:30:00", "heartbeat", {"interval_s": 60, "states": {"plc": "DOWN"}}),
    _change(100, OLD, "UP", "DOWN"),
    _change(101, "2019-03-02T00:00:00", "DOWN", "UP"),
    _line(102, OLD, "incident_opened", {"incident": "inc-old", "target": "old", "asset": "old-asset",
                                        "severity": "S2", "state": "DOWN", "reason": "r", "opened_at": ms(OLD)}),
    _line(103, "2019-03-02T00:00:00", "incident_resolved", {"incident": "inc-old", "at": ms("2019-03-02T00:00:00")}),
    json.dumps({"record": "ticket_raised", "incident": "inc-old", "at": ms(OLD), "actor": "lw"}),
]  # fmt: skip


def _add_old_records(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_gap("p1", "a1", ms(OLD), ms("2019-03-01T01:00:00"), "missed heartbeats")
        tx.add_gap("p1", "a1", ms("2026-09-20T00:00:00"), ms("2026-09-20T01:00:00"), "missed heartbeats")
        old = MaintenanceWindowWire(id="w-old", start=ms(OLD), end=ms("2019-03-01T02:00:00"), assets=["old-asset"],
                                    announced_at=ms("2019-02-01T00:00:00"), announced_by="plant")  # fmt: skip
        tx.add_maintenance_window("p1", old, None)
        tx.add_dead_letter("lw/v1/p1/a1/events", b"junk", "not JSON", ms(OLD), "p1", "a1")
        tx.add_dead_letter("lw/v1/p1/a1/events", b"junk", "not JSON", ms("2026-12-01T00:00:00"), "p1", "a1")


def _rows(store: Store) -> dict[str, list[str]]:
    return {t: sorted(json.dumps(r, sort_keys=True) for r in store.table_rows(t)) for t in store.table_names()}


def _figures(store: Store, config_path: Path) -> list[Any]:
    book = load_book(load(CollectorConfig, config_path), config_path)
    return [(r.contract_id, r.uptime, r.incidents, r.credits) for r in reports(store, book, "2026-09")]


@pytest.fixture(params=STORES)
def database_lines(request: pytest.FixtureRequest) -> Iterator[str]:
    """The [collector] lines of the store a test runs on: SQLite in data_dir, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield ""
        return
    import psycopg

    url, schema = request.getfixturevalue("postgres_url"), f"lw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f'database_url = "{url}?options=-csearch_path%3D{schema}"\n'
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_prune_removes_exactly_the_expired_rows_archives_them_and_keeps_the_figures(
    tmp_path: Path, database_lines: str
) -> None:
    config_path = imported_config(tmp_path, database_lines)
    extra = tmp_path / "extra.jsonl"
    extra.write_text("\n".join(EXTRA) + "\n")
    assert main(["collector", "import", "--config", str(config_path), str(extra)]) == 0
    config = load(CollectorConfig, config_path)
    store = open_store(config)
    assert type(store).__name__ == ("PostgresStore" if database_lines else "SqliteStore")
    try:
        _add_old_records(store)
        before, figures = _rows(store), _figures(store, config_path)
        planned = retention.prune(store, config, NOW, dry_run=True)
        assert _rows(store) == before and planned.archive is None

        result = retention.prune(store, config, NOW)

        after = _rows(store)
        assert _figures(store, config_path) == figures
        removed = {t: sorted(set(before[t]) - set(after.get(t, []))) for t in before}
        expected = {
            "events": 3 + 4,  # metrics 6, 7 and heartbeat 9 (raw); 100-103 (records)
            "dead_letters": 1, "state_changes": 1, "incidents": 1, "incident_updates": 1, "ticket_records": 1,
            "gaps": 1, "maintenance_windows": 1,
        }  # fmt: skip
        assert {t: len(rows) for t, rows in removed.items() if rows} == expected
        assert {t: n for t, n in result.removed.items() if n} == expected == {
            t: n for t, n in planned.removed.items() if n
        }
        kept_events = {json.loads(r)["seq"] for r in after["events"]}
        assert {8, 1, 5}.issubset(kept_events) and not kept_events & {6, 7, 9, 100, 101, 102, 103}
        # The latest state change of a target stays: it is the state the target is in.
        assert [json.loads(r)["seq"] for r in after["state_changes"] if json.loads(r)["target"] == "old"] == [101]
        # Nothing else changed: every table holds what it held minus what was removed (plus the rollups).
        for table, rows in before.items():
            if table != "metric_rollups":
                assert sorted(set(rows) - set(removed[table])) == after[table]

        assert result.archive is not None and result.archive.parent == config.collector.data_dir / "archive"
        archived: dict[str, list[str]] = {}
        for table, row in retention.archived(result.archive):
            archived.setdefault(table, []).append(json.dumps(row, sort_keys=True))
        assert {t: sorted(r) for t, r in archived.items()} == {t: rows for t, rows in removed.items() if rows}

        [plc, beats] = sorted(store.table_rows("metric_rollups"), key=lambda r: str(r["target"]), reverse=True)
        assert (plc["target"], plc["hour"], plc["metrics"], plc["probes"], plc["failures"], plc["latency_max_ms"]) == (
            "plc", ms("2026-09-10T08:00:00"), 2, 24, 0 + 1, 7.0
        )
        assert (beats["target"], beats["heartbeats"], beats["metrics"]) == ("", 1, 0)

        # Nothing is left to prune: no second archive.
        assert retention.prune(store, config, NOW).archive is None
    finally:
        store.close()
    assert main(["collector", "prune", "--dry-run", "--config", str(config_path)]) == 0


def test_the_schedule_counts_from_the_newest_archive(tmp_path: Path) -> None:
    config = CollectorConfig.model_validate({"collector": {"data_dir": str(tmp_path)}, "retention": {"every": "1h"}})
    assert retention.next_prune_after(config, NOW) == NOW + 3_600_000
    archive = retention.archive_dir(config)
    archive.mkdir()
    (archive / "prune-20261215T020000000000Z.jsonl.gz").write_bytes(b"")
    (archive / "prune-junk.jsonl.gz").write_bytes(b"")
    assert retention.next_prune_after(config, NOW) == ms("2026-12-15T03:00:00")


async def test_collector_run_prunes_on_its_schedule(tmp_path: Path) -> None:
    config = CollectorConfig.model_validate(
        {"collector": {"data_dir": str(tmp_path)}, "retention": {"every": "1s"}}
    )
    store = open_store(config)
    started = time.monotonic()
    service = CollectorService(config, store, clock=lambda: NOW + int((time.monotonic() - started) * 1000))
    try:
        with store.transaction() as tx:
            tx.add_dead_letter("lw/v1/p1/a1/events", b"junk", "not JSON", ms(OLD), "p1", "a1")
        pruning = asyncio.create_task(service._prune_forever())
        archive = retention.archive_dir(config)
        # The archive is written before the delete commits: wait for the delete, then check the archive.
        await async_wait_until(lambda: store.table_rows("dead_letters") == [], timeout=30, what="a scheduled prune")
        assert list(archive.glob("prune-*.jsonl.gz"))
        pruning.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pruning
    finally:
        store.close()
