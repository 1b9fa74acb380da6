"""The hash-chained audit log on a real SQLite file: append, verify, tamper, export."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from collector.audit import GENESIS_HASH, AuditLog, canonical_json
from tests.fakes.tickets import T0, open_db


def _log(tmp_path: Path) -> AuditLog:
    log = AuditLog(open_db(tmp_path / "audit.db"))
    log.append("maria@plant-a", "10.1.2.3", "contract.changed", "contract/acme-mes-2026", {"sha256": "9f2c"}, T0)
    log.append("collector", "collector-1", "ticket.raised", "ticket/acme-mes-2026/inc-1", {"vendor_ref": "X-1"}, T0 + 1)
    log.append("paul@plant-a", "10.1.2.4", "maintenance.approved", "window/w-7", {"start": T0, "end": T0 + 9}, T0 + 2)
    return log


def test_entries_chain_from_the_genesis_hash(tmp_path):
    log = _log(tmp_path)
    first, second, third = log.entries()
    assert [first.id, second.id, third.id] == [1, 2, 3]
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.hash and third.prev_hash == second.hash
    body = {
        "id": 1,
        "at_ms": T0,
        "actor": "maria@plant-a",
        "origin": "10.1.2.3",
        "action": "contract.changed",
        "object": "contract/acme-mes-2026",
        "details": {"sha256": "9f2c"},
        "prev_hash": GENESIS_HASH,
    }
    assert first.hash == hashlib.sha256(canonical_json(body).encode()).hexdigest()
    assert log.head() == third.hash and log.verify() is None


def test_an_edited_entry_is_named(tmp_path):
    log = _log(tmp_path)
    conn = sqlite3.connect(tmp_path / "audit.db")
    conn.execute("UPDATE audit_log SET details = ? WHERE id = 2", (canonical_json({"vendor_ref": "X-2"}),))
    conn.commit()
    assert log.verify() == 2


def test_a_rehashed_edit_breaks_the_next_link(tmp_path):
    log = _log(tmp_path)
    conn = sqlite3.connect(tmp_path / "audit.db")
    conn.execute("UPDATE audit_log SET actor = 'someone-else', hash = ? WHERE id = 1", ("f" * 64,))
    conn.commit()
    assert log.verify() == 1
    conn.execute("UPDATE audit_log SET hash = (SELECT prev_hash FROM audit_log WHERE id = 2) WHERE id = 1")
    conn.commit()
    assert log.verify() == 1  # the stored hash no longer matches what entry 1 now says


def test_a_deleted_entry_is_named_by_its_successor(tmp_path):
    log = _log(tmp_path)
    conn = sqlite3.connect(tmp_path / "audit.db")
    conn.execute("DELETE FROM audit_log WHERE id = 2")
    conn.commit()
    assert log.verify() == 3


def test_export_writes_json_lines_with_hashes(tmp_path):
    log = _log(tmp_path)
    out = tmp_path / "audit.jsonl"
    assert log.export(out) == 3
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["action"] for line in lines] == ["contract.changed", "ticket.raised", "maintenance.approved"]
    assert lines[2]["hash"] == log.head() and lines[1]["prev_hash"] == lines[0]["hash"]
    assert lines[2]["details"] == {"start": T0, "end": T0 + 9}


def test_appends_survive_reopening(tmp_path):
    _log(tmp_path)
    reopened = AuditLog(open_db(tmp_path / "audit.db"))
    entry = reopened.append("collector", "collector-1", "credit.computed", "credit/acme/2026-05", {"eur": "100.00"}, T0)
    assert entry.id == 4 and reopened.verify() is None
