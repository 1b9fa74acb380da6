"""Signed checkpoints against a rewritten audit log: the database is a real SQLite file, and the attacker
may write it at will (and re-chain every hash) but does not hold the signing key."""

from __future__ import annotations

import csv
import io
import json
import shutil
import socket
import sqlite3
import stat
import subprocess
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from collector.api.app import create_app
from collector.api.server import ApiServer
from collector.audit import AuditLog, entry_hash
from collector.audit_evidence import (
    Checkpoint,
    Checkpointer,
    generate_key,
    latest_checkpoint,
    load_private_key,
    load_public_key,
    read_anchors,
    read_checkpoints,
    sign,
    signature_holds,
    verify_log,
)
from collector.exports import csv_tables
from collector.service import CollectorService
from collector.store import open_store
from collector.store.sqlite import SqliteStore
from collector.ticketing.lifecycle import Lifecycle
from collector.tokens import create_token
from linewarden.book import load_book
from linewarden.cli import main
from linewarden.config.collector import AuditConfig, CollectorConfig
from linewarden.config.load import load
from simulators.broker import Mosquitto
from tests.fakes.tickets import T0, open_db
from tests.integration.test_collector_cli import CONTRACT, HISTORY
from tests.integration.ticketing_helpers import collector_config
from tests.waiting import async_wait_until

DAY_MS = 86_400_000
Rows = list[dict[str, object]]


def _entries(db: Path) -> Rows:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM audit_log ORDER BY id")]
    conn.close()
    return rows


def _rewrite(db: Path, rows: Rows) -> None:
    """What an attacker with write access does: replace the table with `rows`, numbered 1.. and re-chained."""
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM audit_log")
    prev = "0" * 64
    for number, row in enumerate(rows, start=1):
        details = json.loads(str(row["details"]))
        digest = entry_hash(number, int(str(row["at_ms"])), str(row["actor"]), str(row["origin"]), str(row["action"]),
                            str(row["object"]), details, prev)  # fmt: skip
        conn.execute(
            "INSERT INTO audit_log (id, at_ms, actor, origin, action, object, details, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (number, row["at_ms"], row["actor"], row["origin"], row["action"], row["object"], row["details"],
             prev, digest),
        )  # fmt: skip
        prev = digest
    conn.commit()
    conn.close()


def _backdate_ack(rows: Rows) -> Rows:
    return [{**r, "at_ms": int(str(r["at_ms"])) - DAY_MS} if r["action"] == "ticket.acknowledged" else r for r in rows]


def _insert(rows: Rows) -> Rows:
    forged = {**rows[1], "action": "ticket.paused", "details": '{"reason":"waiting on the plant"}'}
    return [rows[0], forged, *rows[1:]]


TAMPERING: dict[str, Callable[[Rows], Rows]] = {
    "deletion": lambda rows: [rows[0], *rows[2:]],
    "truncation": lambda rows: rows[:-1],
    "emptied": lambda rows: [],
    "insertion": _insert,
    "reordering": lambda rows: [rows[1], rows[0], *rows[2:]],
    "edit (acknowledgement a day earlier)": _backdate_ack,
}


@pytest.fixture
def signed(tmp_path: Path) -> tuple[AuditLog, Path, Checkpointer]:
    db = tmp_path / "collector.db"
    log = AuditLog(open_db(db))
    log.append("collector", "c1", "ticket.raised", "ticket/acme/inc-1", {"vendor_ref": "X-1"}, T0)
    log.append("acme", "10.0.0.9", "ticket.acknowledged", "ticket/acme/inc-1", {}, T0 + 3_600_000)
    log.append("collector", "c1", "ticket.resolved", "ticket/acme/inc-1", {}, T0 + 7_200_000)
    key = tmp_path / "keys" / "audit.key"
    generate_key(key)
    checkpointer = Checkpointer(load_private_key(key), tmp_path / "audit-checkpoints.jsonl", "c1")
    assert checkpointer.checkpoint(log, T0 + 7_300_000) is not None
    return log, db, checkpointer


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_a_rewritten_and_rechained_log_contradicts_the_checkpoint(
    signed: tuple[AuditLog, Path, Checkpointer], kind: str
) -> None:
    log, db, checkpointer = signed
    public = checkpointer.key.public_key()
    checkpoints = read_checkpoints(checkpointer.path)
    assert verify_log(log, checkpoints, public) == []
    _rewrite(db, TAMPERING[kind](_entries(db)))
    assert log.verify() is None, "the re-chained hashes alone look intact"
    problems = verify_log(log, checkpoints, public)
    assert problems, kind
    if kind in ("truncation", "emptied"):
        assert "truncated or emptied" in problems[0]


def test_an_edit_without_rechaining_is_named_by_the_chain(signed: tuple[AuditLog, Path, Checkpointer]) -> None:
    log, db, checkpointer = signed
    conn = sqlite3.connect(db)
    conn.execute("UPDATE audit_log SET at_ms = at_ms - ? WHERE id = 2", (DAY_MS,))
    conn.commit()
    conn.close()
    problems = verify_log(log, read_checkpoints(checkpointer.path), checkpointer.key.public_key())
    assert problems[0].startswith("hash chain broken at entry 2")


def test_a_checkpoint_forged_with_another_key_does_not_hold(
    signed: tuple[AuditLog, Path, Checkpointer], tmp_path: Path
) -> None:
    log, db, checkpointer = signed
    _rewrite(db, _backdate_ack(_entries(db)))
    other = tmp_path / "attacker.key"
    generate_key(other)
    count, head = log.count_and_head()
    forged = sign(load_private_key(other), count, head, T0 + 9_000_000, "c1")
    problems = verify_log(log, [forged], checkpointer.key.public_key())
    assert problems and "signature does not hold" in problems[0]


def test_checkpoints_are_appended_only_when_the_log_moved(signed: tuple[AuditLog, Path, Checkpointer]) -> None:
    log, _, checkpointer = signed
    assert checkpointer.checkpoint(log, T0 + 8_000_000, only_if_moved=True) is None
    log.append("plant", "10.0.0.2", "ticket.paused", "ticket/acme/inc-1", {}, T0 + 8_100_000)
    assert checkpointer.checkpoint(log, T0 + 8_200_000, only_if_moved=True) is not None
    assert [cp.count for cp in read_checkpoints(checkpointer.path)] == [3, 4]
    assert stat.S_IMODE(checkpointer.path.stat().st_mode) == 0o600


def test_checkpoints_also_go_to_syslog(signed: tuple[AuditLog, Path, Checkpointer]) -> None:
    log, _, checkpointer = signed
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(10)
        port = receiver.getsockname()[1]
        to_syslog = Checkpointer(checkpointer.key, checkpointer.path, "c1", syslog=f"127.0.0.1:{port}")
        log.append("plant", "10.0.0.2", "ticket.paused", "ticket/acme/inc-1", {}, T0 + 8_100_000)
        cp = to_syslog.checkpoint(log, T0 + 8_200_000)
        message = receiver.recv(65536).decode()
    assert cp is not None and message.startswith("<38>")  # facility auth (4) * 8 + info (6)
    assert json.loads(message.split("checkpoint ", 1)[1].rstrip("\x00")) == cp.to_dict()


def test_generated_keys_are_private_and_never_replaced(tmp_path: Path) -> None:
    key = tmp_path / "new" / "audit.key"
    generate_key(key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert (tmp_path / "new" / "audit.key.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY")
    with pytest.raises(Exception, match="refusing to replace"):
        generate_key(key)


# ---------------------------------------------------------------- through the CLI, as operators run it


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "plc.toml").write_text(CONTRACT)
    path = tmp_path / "collector.toml"
    path.write_text(
        f'[collector]\nid = "c1"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[audit]\nsigning_key = "{tmp_path / "keys" / "audit.key"}"\n'
    )
    history = tmp_path / "history.jsonl"
    history.write_text("\n".join(HISTORY) + "\n")
    assert main(["collector", "audit", "keygen", "--config", str(path)]) == 0
    assert main(["collector", "import", "--config", str(path), str(history)]) == 0
    return path


def test_cli_verify_detects_an_emptied_table(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["collector", "audit", "--config", str(config)]
    assert main([*args[:2], "checkpoint", *args[2:]]) == 0
    assert main([*args[:2], "verify", *args[2:]]) == 0
    assert "intact" in capsys.readouterr().out
    _rewrite(config.parent / "data" / "collector.db", [])
    assert main([*args[:2], "verify", *args[2:]]) == 1
    assert "truncated or emptied" in capsys.readouterr().err


def test_an_export_verifies_offline_with_the_public_key_alone(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = tmp_path / "elsewhere" / "audit.jsonl"
    exported.parent.mkdir()
    assert main(["collector", "audit", "export", "--config", str(config), "--out", str(exported)]) == 0
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    public = tmp_path / "keys" / "audit.key.pub"
    (tmp_path / "data").rename(tmp_path / "gone")  # no database, no config: the file and the key
    verify = ["audit", "verify-export", str(exported), "--public-key", str(public)]
    assert main(verify) == 0
    assert "intact" in capsys.readouterr().out

    lines = exported.read_text().splitlines()
    entries = [json.loads(line) for line in lines if '"checkpoint"' not in line]
    assert entries[0]["action"] == "import.applied" and entries[0]["details"]["imported"] == len(HISTORY)
    rows = [{**e, "details": json.dumps(e["details"])} for e in entries]
    rows[0]["at_ms"] -= DAY_MS
    prev, rewritten = "0" * 64, []
    for e in rows:  # re-chained, as a careful forger would
        e["prev_hash"] = prev
        e["hash"] = prev = entry_hash(e["id"], e["at_ms"], e["actor"], e["origin"], e["action"], e["object"],
                                      json.loads(e["details"]), prev)  # fmt: skip
        rewritten.append(json.dumps({**e, "details": json.loads(e["details"])}))
    exported.write_text("\n".join(rewritten + [line for line in lines if '"checkpoint"' in line]) + "\n")
    assert main(verify) == 1
    assert "NOT intact" in capsys.readouterr().err


def test_the_latest_checkpoint_goes_out_with_every_report(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["collector", "audit", "checkpoint", "--config", str(config)]) == 0
    capsys.readouterr()
    cp = latest_checkpoint(config.parent / "data" / "audit-checkpoints.jsonl")
    assert cp is not None
    report = ["collector", "report", "--config", str(config), "--period", "2026-09", "--format"]
    assert main([*report, "json"]) == 0
    [sent] = json.loads(capsys.readouterr().out)
    assert sent["audit_checkpoint"] == cp.to_dict()
    assert main([*report, "table"]) == 0
    assert "-- audit_checkpoint" in (out := capsys.readouterr().out) and cp.signature in out


needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None or shutil.which("pdfdetach") is None,
                                   reason="needs poppler-utils (.ci/run installs it)")


def _holds_against_the_store(config: Path, cp: Checkpoint) -> list[str]:
    """What `verify_log` finds wrong with the store's log against `cp`, checked with the public key alone."""
    public = load_public_key(config.parent / "keys" / "audit.key.pub")
    assert signature_holds(cp, public)
    store = open_store(load(CollectorConfig, config))
    try:
        return verify_log(AuditLog(store), [cp], public)
    finally:
        store.close()


@needs_poppler
def test_the_review_pdf_carries_the_checkpoint_printed_and_attached(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["collector", "audit", "checkpoint", "--config", str(config)]) == 0
    cp = latest_checkpoint(config.parent / "data" / "audit-checkpoints.jsonl")
    assert cp is not None
    pdf = tmp_path / "review.pdf"
    assert main(["collector", "review", "--config", str(config), "--period", "2026-09", "--output", str(pdf)]) == 0
    words = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    assert "Audit evidence" in words and cp.head in words.split() and cp.signature in words.split()
    assert "verify-export audit.jsonl --public-key audit.key.pub --anchors audit-checkpoint.json" in words
    subprocess.run(["pdfdetach", "-saveall", "-o", str(tmp_path), str(pdf)], check=True, capture_output=True)
    attached = tmp_path / "audit-checkpoint.json"
    assert read_anchors(attached) == [cp]
    assert _holds_against_the_store(config, cp) == []
    capsys.readouterr()
    public = str(config.parent / "keys" / "audit.key.pub")
    assert main(["collector", "audit", "verify", "--config", str(config), "--checkpoints", str(attached),
                 "--public-key", public]) == 0  # fmt: skip
    db = config.parent / "data" / "collector.db"
    rows = _entries(db)
    _rewrite(db, [{**rows[0], "at_ms": int(str(rows[0]["at_ms"])) - DAY_MS}, *rows[1:]])  # re-chained later
    assert _holds_against_the_store(config, cp) != []
    assert main(["collector", "audit", "verify", "--config", str(config), "--checkpoints", str(attached),
                 "--public-key", public]) == 1  # fmt: skip


def test_the_csv_tables_carry_the_checkpoint_as_a_table_of_their_own(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["collector", "audit", "checkpoint", "--config", str(config)]) == 0
    cp = latest_checkpoint(config.parent / "data" / "audit-checkpoints.jsonl")
    assert cp is not None
    out = tmp_path / "tables.zip"
    assert main(["collector", "review", "--config", str(config), "--period", "2026-09", "--format", "zip",
                 "--output", str(out)]) == 0  # fmt: skip
    with zipfile.ZipFile(out) as z:
        table = z.read("audit_checkpoint.csv").decode("utf-8")
    [row] = list(csv.DictReader(io.StringIO(table, newline="")))
    assert (row["count"], row["head"], row["signature"]) == (str(cp.count), cp.head, cp.signature)
    (tmp_path / "audit_checkpoint.csv").write_text(table)
    assert read_anchors(tmp_path / "audit_checkpoint.csv") == [cp]
    assert _holds_against_the_store(config, cp) == []
    capsys.readouterr()
    assert main(["collector", "report", "--config", str(config), "--period", "2026-09", "--format", "csv",
                 "--table", "audit_checkpoint"]) == 0  # fmt: skip
    assert capsys.readouterr().out == table
    # A signature may begin with "+": the cell is defused for spreadsheets and read back as signed.
    plus = Checkpoint(cp.count, cp.head, cp.at_ms, cp.collector, cp.key_id, "+" + cp.signature[1:])
    (tmp_path / "plus.csv").write_text(csv_tables([], plus)["audit_checkpoint"])
    assert "'+" in (tmp_path / "plus.csv").read_text()
    assert read_anchors(tmp_path / "plus.csv") == [plus]


async def test_the_api_attaches_the_checkpoint_and_audits_failed_logins(config: Path, tmp_path: Path) -> None:
    assert main(["collector", "audit", "checkpoint", "--config", str(config)]) == 0
    cfg = load(CollectorConfig, config)
    book = load_book(cfg, config)
    store = SqliteStore(tmp_path / "data" / "collector.db")
    lifecycle = Lifecycle(store, book, lambda: T0, "test")
    app = create_app(store, lifecycle, lambda: T0, tmp_path / "rca", book=book,
                     audit_checkpoint=lambda: latest_checkpoint(cfg.checkpoint_file))  # fmt: skip
    server = ApiServer(app, "127.0.0.1", 0)
    port = await server.start()
    try:
        vendor, info = create_token(store, "vendor", "integrator", "integrator", T0, "test", "here")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            found = await http.get("/reports/2026-09", headers={"Authorization": f"Bearer {vendor}"})
            assert found.status_code == 200
            assert found.json()[0]["audit_checkpoint"]["signature"] == latest_checkpoint(cfg.checkpoint_file).signature  # type: ignore[union-attr]
            latest = latest_checkpoint(cfg.checkpoint_file)
            assert latest is not None
            for export in ("/reports/2026-09.pdf", "/reports/2026-09/audit_checkpoint.csv"):
                sent = await http.get(export, headers={"Authorization": f"Bearer {vendor}"})
                assert sent.status_code == 200 and latest.head.encode() in sent.content
            wrong = f"lw_{info.id}_not-the-secret"
            for _ in range(8):
                assert (await http.get("/tickets", headers={"Authorization": f"Bearer {wrong}"})).status_code == 401
    finally:
        await server.stop()
    log = AuditLog(store)
    failed = [e for e in log.entries() if e.action == "auth.failed"]
    store.close()
    assert len(failed) == 5, "rate-limited: at most 5 entries per address and minute"
    assert failed[0].object == f"token/{info.id}" and failed[0].origin == "127.0.0.1"
    assert "not-the-secret" not in json.dumps([e.details for e in failed])


def test_the_vendor_s_report_catches_an_insider_who_holds_the_key(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whoever holds the signing key can sign a rewritten log; the checkpoint the vendor received with its
    report still contradicts it."""
    assert main(["collector", "audit", "checkpoint", "--config", str(config)]) == 0
    assert main(["collector", "report", "--config", str(config), "--period", "2026-09", "--format", "json"]) == 0
    held = tmp_path / "vendor-copy-of-report.json"
    held.write_text(capsys.readouterr().out.split("\n", 1)[1])  # the first line is the checkpoint message
    db = tmp_path / "data" / "collector.db"
    rows = _entries(db)
    _rewrite(db, [{**rows[0], "details": '{"imported":0}'}, *rows[1:]])  # the import made to look empty
    (tmp_path / "data" / "audit-checkpoints.jsonl").unlink()
    exported = tmp_path / "audit.jsonl"
    assert main(["collector", "audit", "export", "--config", str(config), "--out", str(exported)]) == 0
    verify = ["audit", "verify-export", str(exported), "--public-key", str(tmp_path / "keys" / "audit.key.pub")]
    assert main(verify) == 0, "re-signed by the key holder: intact on its own"
    capsys.readouterr()
    assert main([*verify, "--anchors", str(held)]) == 1
    assert "entry 1 does not have the signed head hash" in capsys.readouterr().err


@pytest.mark.broker
async def test_the_running_collector_checkpoints_on_its_schedule(mosquitto: Mosquitto, tmp_path: Path) -> None:
    key = tmp_path / "audit.key"
    generate_key(key)
    config = collector_config(mosquitto.host, mosquitto.port, tmp_path / "data", "c-audit").model_copy(
        update={"audit": AuditConfig(signing_key=key, checkpoint_interval=timedelta(milliseconds=50))}
    )
    store = open_store(config)
    svc = CollectorService(config, store)
    await svc.start()
    try:
        await async_wait_until(lambda: read_checkpoints(config.checkpoint_file), what="checkpoint at start")
        AuditLog(store).append("plant", "10.0.0.2", "ticket.paused", "ticket/acme/inc-1", {}, T0)
        await async_wait_until(lambda: read_checkpoints(config.checkpoint_file)[-1].count == 1,
                               what="checkpoint after the log grew")  # fmt: skip
    finally:
        await svc.stop()
        store.close()
    counts = [cp.count for cp in read_checkpoints(config.checkpoint_file)]
    assert counts == [0, 1], "one checkpoint per change of the head, not one per interval"
