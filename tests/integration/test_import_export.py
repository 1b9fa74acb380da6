"""`linewarden collector import` and `export` against a real SQLite file."""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from collector.cli import main
from collector.store.sqlite import SqliteStore
from tests.integration.collector_helpers import T0

GOOD = [
    {"site": "p1", "agent": "a1", "seq": 1, "ts": T0, "type": "state_change",
     "body": {"target": "plc-1", "asset": "line3-plc", "from": "UP", "to": "DOWN", "reason": "timeout", "at": T0}},
    {"site": "p1", "agent": "a1", "seq": 2, "ts": T0 + 10, "type": "incident_opened",
     "body": {"incident": "inc-7", "severity": "S1", "state": "DOWN", "reason": "timeout", "in_production": True,
              "opened_at": T0, "asset": "line3-plc", "target": "plc-1"}},
    {"record": "ticket_raised", "incident": "inc-7", "at": T0 + 60_000, "actor": "collector",
     "details": {"ticket": "ACME-1"}},
    {"record": "ticket_acknowledged", "incident": "inc-7", "at": T0 + 600_000, "actor": "acme"},
    {"record": "ticket_triaged", "incident": "inc-7", "at": T0 + 700_000, "actor": "acme", "severity": "S2"},
    {"record": "ticket_paused", "incident": "inc-7", "at": T0 + 800_000, "actor": "acme"},
    {"record": "ticket_resumed", "incident": "inc-7", "at": T0 + 900_000, "actor": "plant-it"},
    {"record": "resolution_claimed", "incident": "inc-7", "at": T0 + 1_000_000, "actor": "acme"},
    {"record": "rca_received", "incident": "inc-7", "at": T0 + 2_000_000, "actor": "acme"},
    {"record": "maintenance_window", "site": "p1", "id": "mw-9", "start": T0 + 3_600_000, "end": T0 + 7_200_000,
     "assets": ["line3-plc"], "announced_at": T0, "announced_by": "acme"},
    {"record": "monitoring_gap", "site": "p1", "agent": "a1", "start": T0 - 5000, "end": T0 - 1000,
     "reason": "site link down"},
]  # fmt: skip


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "collector.toml"
    path.write_text(f'[collector]\ndata_dir = "{tmp_path / "data"}"\n')
    return path


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rows(tmp_path: Path, table: str) -> list[dict[str, Any]]:
    s = SqliteStore(tmp_path / "data" / "collector.db")
    try:
        return s.table_rows(table)
    finally:
        s.close()


def test_import_is_idempotent(tmp_path, config, capsys):
    f = _write(tmp_path / "history.jsonl", [json.dumps(r) for r in GOOD])
    assert main(["import", "--config", str(config), str(f)]) == 0
    assert f"imported {len(GOOD)}, already present 0, skipped 0" in capsys.readouterr().out
    assert main(["import", "--config", str(config), str(f)]) == 0
    assert f"imported 0, already present {len(GOOD)}, skipped 0" in capsys.readouterr().out
    assert len(_rows(tmp_path, "ticket_records")) == 7
    triaged = [r for r in _rows(tmp_path, "ticket_records") if r["kind"] == "ticket_triaged"]
    assert json.loads(triaged[0]["details"]) == {"severity": "S2"}


def test_bad_lines_are_reported_by_number_and_skipped(tmp_path, config, capsys):
    bad_model = dict(GOOD[0], seq=0)
    unknown_field = dict(GOOD[2], colour="red")
    lines = [json.dumps(GOOD[0]), "{oops", json.dumps(bad_model), "", json.dumps(unknown_field), json.dumps(GOOD[9])]
    f = _write(tmp_path / "history.jsonl", lines)
    assert main(["import", "--config", str(config), str(f)]) == 1
    err = capsys.readouterr().err
    assert f"{f}:2: skipped: not JSON" in err
    assert f"{f}:3: skipped: Expected `int` >= 1 - at `$.seq`" in err
    assert f"{f}:5: skipped: ticket_raised.colour" in err
    assert len(_rows(tmp_path, "events")) == 1
    assert len(_rows(tmp_path, "maintenance_windows")) == 1
    assert _rows(tmp_path, "ticket_records") == []


@pytest.mark.timeout(30)  # before the check, /dev/zero was hashed without end
def test_a_device_or_fifo_is_refused_unread(tmp_path, config, capsys):
    fifo = tmp_path / "history.jsonl"
    os.mkfifo(fifo)  # opening it would block until a writer came
    for path in ("/dev/zero", str(fifo)):
        assert main(["import", "--config", str(config), path]) == 1
        assert capsys.readouterr().err == f"error: cannot read {path}: not a regular file\n"


def test_export_writes_every_table_with_a_self_describing_header_and_csv(tmp_path, config):
    f = _write(tmp_path / "history.jsonl", [json.dumps(r) for r in GOOD])
    assert main(["import", "--config", str(config), str(f)]) == 0
    out = tmp_path / "export.zip"
    assert main(["export", "--config", str(config), "--out", str(out), "--csv"]) == 0
    with zipfile.ZipFile(out) as zf:
        header, *events = [json.loads(line) for line in zf.read("tables/events.jsonl").splitlines()]
        assert header == {"schema": "linewarden.table-rows/1", "table": "events",
                          "columns": ["site", "agent", "epoch", "seq", "boot", "ts", "type", "body", "received_at"]}
        assert [e["seq"] for e in events] == [1, 2]
        [row] = list(csv.DictReader(io.StringIO(zf.read("csv/state_changes.csv").decode())))
        assert (row["target"], row["to_state"], row["at"]) == ("plc-1", "DOWN", str(T0))
        assert next(csv.reader(io.StringIO(zf.read("csv/dead_letters.csv").decode())))[:2] == ["id", "topic"]
        assert zf.read("tables/gaps.jsonl").count(b"\n") == 2
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["tables"]["events"]["rows"] == 2 and ["core", 1] in manifest["migrations"]


def test_agents_lists_what_births_told(tmp_path, config, capsys):
    from collector.ingest import Ingest
    from linewarden.config.collector import LivenessConfig
    from linewarden.wire import birth_topic, encode
    from tests.integration.collector_helpers import birth

    s = SqliteStore(tmp_path / "data" / "collector.db")
    s.migrate()
    Ingest(s, LivenessConfig(), T0).handle(birth_topic("p1", "a1"), encode(birth("p1", "a1")), T0)
    s.close()
    assert main(["agents", "--config", str(config), "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["site"], row["agent"], row["liveness"], row["dead_letters"]) == ("p1", "a1", "silent", 0)


def test_state_change_without_asset_takes_the_target_as_asset(tmp_path, config):
    """The v1 wire table listed a state change's fields without its asset: a history import may leave it out."""
    line = {"site": "p1", "agent": "a1", "seq": 1, "ts": T0, "type": "state_change",
            "body": {"target": "mes-app", "from": "UP", "to": "DOWN", "reason": "timeout", "at": T0}}  # fmt: skip
    f = _write(tmp_path / "history.jsonl", [json.dumps(line)])
    assert main(["import", "--config", str(config), str(f)]) == 0
    [row] = _rows(tmp_path, "state_changes")
    assert (row["target"], row["asset"]) == ("mes-app", "mes-app")


def test_incident_without_in_production_is_imported(tmp_path, config):
    """A history import may not know whether production ran: the field is optional, stored as NULL."""
    body = {k: v for k, v in GOOD[1]["body"].items() if k != "in_production"}  # type: ignore[attr-defined]
    f = _write(tmp_path / "history.jsonl", [json.dumps(dict(GOOD[1], body=body))])
    assert main(["import", "--config", str(config), str(f)]) == 0
    [incident] = _rows(tmp_path, "incidents")
    assert (incident["id"], incident["in_production"]) == ("inc-7", None)
