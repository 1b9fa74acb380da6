"""`collector export` → `collector import` into a fresh store: every report figure, every row and the audit
chain (with its signed checkpoints) come back exactly; a damaged archive or a used store is refused."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path

import psycopg
import pytest

from collector.audit import AuditLog
from collector.audit_evidence import load_public_key, read_checkpoints, verify_entries
from collector.progress import Progress
from collector.reporting import reports, with_checkpoint
from collector.store import open_store
from linewarden.book import load_book
from linewarden.cli import main
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from tests.integration.review_helpers import imported_config
from tests.integration.test_collector_cli import ms

NOW = ms("2026-11-15T12:00:00")
MONTHS = ("2026-08", "2026-09", "2026-10", "2026-11")


def _figures(config_path: Path) -> dict[str, object]:
    config = load(CollectorConfig, config_path)
    book, store = load_book(config, config_path), open_store(config)
    try:
        return {m: [with_checkpoint(r, None) for r in reports(store, book, m, now_ms=NOW)] for m in MONTHS}
    finally:
        store.close()


def _tables(config_path: Path) -> dict[str, list[dict[str, object]]]:
    store = open_store(load(CollectorConfig, config_path))
    try:
        return {t: store.table_rows(t) for t in store.table_names()}
    finally:
        store.close()


def _fresh(tmp_path: Path, name: str) -> Path:
    config = tmp_path / name / "collector.toml"
    config.parent.mkdir()
    data = tmp_path / name / "data"
    config.write_text(f'contracts = ["{data}/imported/contracts/*.toml"]\n[collector]\ndata_dir = "{data}"\n')
    return config


def test_an_archive_brings_back_every_figure_row_file_and_the_signed_chain(tmp_path, capsys):
    config = imported_config(tmp_path)
    key = tmp_path / "keys" / "audit.key"
    config.write_text(config.read_text().replace("[collector]", f'[audit]\nsigning_key = "{key}"\n[collector]'))
    assert main(["collector", "audit", "keygen", "--config", str(config)]) == 0
    assert main(["collector", "report", "--config", str(config), "--period", "2026-09", "--format", "json"]) == 0
    (tmp_path / "data" / "rca").mkdir(exist_ok=True)
    (tmp_path / "data" / "rca" / "00").write_bytes(b"root cause: a failed PLC power supply")
    assert main(["collector", "audit", "checkpoint", "--config", str(config)]) == 0
    archive = tmp_path / "handover.zip"
    assert main(["collector", "export", "--config", str(config), "--out", str(archive), "--csv"]) == 0
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        first = json.loads(zf.open("tables/events.jsonl").readline())
    assert {"manifest.json", "tables/events.jsonl", "csv/events.csv", "files/contracts/plc.toml",
            "files/rca/00", "audit/checkpoints.jsonl", "audit/signing-key.pub"} <= names
    assert first["schema"] == "linewarden.table-rows/1" and "seq" in first["columns"]
    capsys.readouterr()

    target = _fresh(tmp_path, "new")
    assert main(["collector", "import", "--config", str(target), str(archive)]) == 0, capsys.readouterr().err
    assert "\r" not in capsys.readouterr().err, "no progress bar when standard error is not a terminal"
    assert _figures(target) == _figures(config)
    before, after = _tables(config), _tables(target)
    assert set(before) == set(after)
    for table in before:
        if table != "audit_log":
            assert sorted(map(repr, after[table])) == sorted(map(repr, before[table])), table
    assert after["audit_log"][:-1] == before["audit_log"]
    assert after["audit_log"][-1]["action"] == "archive.imported"
    new_store = open_store(load(CollectorConfig, target))
    try:
        assert AuditLog(new_store).verify() is None
        imported = tmp_path / "new" / "data" / "imported"
        checkpoints = read_checkpoints(imported / "checkpoints.jsonl")
        assert checkpoints and verify_entries(AuditLog(new_store).rows(), checkpoints,
                                              load_public_key(imported / "signing-key.pub")) == []
    finally:
        new_store.close()
    imported = tmp_path / "new" / "data" / "imported"
    assert main(["collector", "audit", "verify", "--config", str(target), "--checkpoints",
                 str(imported / "checkpoints.jsonl"), "--public-key", str(imported / "signing-key.pub")]) == 0
    assert (tmp_path / "new" / "data" / "rca" / "00").read_bytes() == b"root cause: a failed PLC power supply"

    assert main(["collector", "import", "--config", str(target), str(archive)]) == 1
    assert "not empty (table" in capsys.readouterr().err


@pytest.mark.postgres
def test_the_round_trip_through_postgresql_and_back_is_exact(tmp_path, postgres_url, capsys):
    """SQLite → archive → PostgreSQL → archive → SQLite: the PostgreSQL snapshot streams through a server-side
    cursor, and its auto-numbered ids go on after the imported ones."""
    config = imported_config(tmp_path)
    source = open_store(load(CollectorConfig, config))
    try:
        with source.transaction() as tx:
            tx.add_dead_letter("lw/v1/p1/a1/events", b"{oops", "not JSON", NOW, "p1", "a1")
    finally:
        source.close()
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    assert main(["collector", "export", "--config", str(config), "--out", str(first)]) == 0
    schema = f"lw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        pg = _fresh(tmp_path, "pg")
        url = f"{postgres_url}?options=-csearch_path%3D{schema}"
        pg.write_text(pg.read_text().replace("[collector]", f'[collector]\ndatabase_url = "{url}"'))
        assert main(["collector", "import", "--config", str(pg), str(first)]) == 0, capsys.readouterr().err
        assert _figures(pg) == _figures(config)
        store = open_store(load(CollectorConfig, pg))
        try:
            with store.transaction() as tx:  # the next dead letter is numbered after the imported one
                tx.add_dead_letter("t", b"junk", "test", NOW, None, None)
            assert sorted(int(r["id"]) for r in store.table_rows("dead_letters")) == [1, 2]
            with store.transaction() as tx:
                tx.sql.execute("DELETE FROM dead_letters WHERE reason = 'test'")
                tx.sql.execute("UPDATE counters SET value = value - 1")
        finally:
            store.close()
        assert main(["collector", "export", "--config", str(pg), "--out", str(second)]) == 0
        back = _fresh(tmp_path, "back")
        assert main(["collector", "import", "--config", str(back), str(second)]) == 0, capsys.readouterr().err
        assert _figures(back) == _figures(config)
        before, after = _tables(config), _tables(back)
        for table in before:
            if table not in ("audit_log", "schema_migrations"):
                assert sorted(map(repr, after[table])) == sorted(map(repr, before[table])), table
        assert after["audit_log"][:len(before["audit_log"])] == before["audit_log"]
        store = open_store(load(CollectorConfig, back))
        try:
            assert AuditLog(store).verify() is None
        finally:
            store.close()
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_damaged_archive_is_refused_and_leaves_nothing(tmp_path, capsys):
    config = imported_config(tmp_path)
    archive, damaged = tmp_path / "a.zip", tmp_path / "damaged.zip"
    assert main(["collector", "export", "--config", str(config), "--out", str(archive)]) == 0
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(damaged, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "tables/events.jsonl":
                data = data.replace(b'"seq":1,', b'"seq":7,', 1)
            dst.writestr(info, data)
    target = _fresh(tmp_path, "new")
    capsys.readouterr()
    assert main(["collector", "import", "--config", str(target), str(damaged)]) == 1
    assert "tables/events.jsonl: its SHA-256 is not the manifest's" in capsys.readouterr().err
    assert all(rows == [] for t, rows in _tables(target).items() if t != "schema_migrations")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_draws_on_a_terminal_only_and_not_too_often():
    ticks = iter([0.0, 0.01, 0.02, 0.5])
    shown = _Terminal()
    bar = Progress(200, "export", shown, clock=lambda: next(ticks))
    for _ in range(4):
        bar.advance(50, "events")
    bar.finish()
    frames = shown.getvalue().split("\r")[1:]
    assert len(frames) == 3, "the first draw, the one after 0.1 s, and the last"
    assert "[" + "#" * 7 in frames[0] and " 25%" in frames[0] and "100%" in frames[-1]
    quiet = io.StringIO()
    Progress(10, "import", quiet).advance(10)
    assert quiet.getvalue() == ""


def _forged(path: Path, manifest: object, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("manifest.json", json.dumps(manifest))
    return path


def test_a_forged_manifest_is_refused_with_the_reason(tmp_path, capsys):
    target = _fresh(tmp_path, "new")
    good = {"schema": "linewarden.archive/1", "migrations": [["core", 1]], "tables": {}, "members": []}
    sha = "0" * 64
    cases = [
        ({**good, "tables": {"events": {"rows": 1, "columns": ["seq"], "member": "tables/x.jsonl"}}},
         "member 'tables/x.jsonl' is not in the archive"),
        ({**good, "members": [{"name": "files/rca/../../../etc/passwd", "kind": "rca", "sha256": sha, "bytes": 1}]},
         "not a plain file name"),
        ({**good, "migrations": [["core", 999]]}, "does not know"),
        ({**good, "members": [{"name": "tables/a.jsonl"}]}, "members.0.kind: Field required"),
        ({"schema": "something/else"}, "manifest.json is not linewarden.archive/1"),
    ]
    for n, (manifest, message) in enumerate(cases):
        archive = _forged(tmp_path / f"forged-{n}.zip", manifest, {})
        assert main(["collector", "import", "--config", str(target), str(archive)]) == 1
        assert message in capsys.readouterr().err, message
