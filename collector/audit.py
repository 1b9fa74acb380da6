"""The audit log: append-only and hash-chained, on the collector's database (table `audit_log`).

Each entry's hash is SHA-256 over the canonical JSON (keys sorted, no spaces, UTF-8) of
{id, at_ms, actor, origin, action, object, details, prev_hash}, and `prev_hash` is the hash of the entry
before; the first entry's `prev_hash` is GENESIS_HASH (64 zeros). Ids run 1, 2, 3 … without gaps, so editing,
deleting or reordering any entry breaks the chain at that entry. Removing entries from the end leaves a
valid shorter chain, and whoever can write the database can rewrite and re-chain it whole: signed
checkpoints kept outside the database (collector.audit_evidence) detect both.

Several collectors may append at once (on PostgreSQL, under READ COMMITTED): an append first takes the chain
head's row lock (`lock_chain`), held until its transaction ends, and only then reads the last entry, so the
next writer waits and links to this one: no two entries with one id, no fork.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from collector.store.base import Row, Sql, Store

GENESIS_HASH = "0" * 64
_COLUMNS = "id, at_ms, actor, origin, action, object, details, prev_hash, hash"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at_ms: int
    actor: str
    origin: str
    action: str
    object: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


def entry_hash(
    id: int, at_ms: int, actor: str, origin: str, action: str, obj: str, details: Mapping[str, Any], prev_hash: str
) -> str:
    body = {
        "id": id,
        "at_ms": at_ms,
        "actor": actor,
        "origin": origin,
        "action": action,
        "object": obj,
        "details": details,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def lock_chain(sql: Sql) -> None:
    """Hold the chain head until the caller's transaction ends (taken again in the same transaction: a no-op).
    Ticketing numbers its dispatches and timers by max + 1 under this same lock: one lock, so no lock order."""
    sql.execute("UPDATE write_locks SET taken = taken + 1 WHERE name = 'audit'")


def append_entry(
    sql: Sql,
    actor: str,
    origin: str,
    action: str,
    obj: str,
    details: Mapping[str, Any],
    at_ms: int,
) -> AuditEntry:
    """Append inside the caller's write transaction, so the entry commits (or not) with the change it records."""
    lock_chain(sql)
    rows = sql.query("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
    new_id, prev = (int(rows[0]["id"]) + 1, str(rows[0]["hash"])) if rows else (1, GENESIS_HASH)
    details = json.loads(canonical_json(details))  # what verify() will read back
    digest = entry_hash(new_id, at_ms, actor, origin, action, obj, details, prev)
    sql.execute(
        f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (new_id, at_ms, actor, origin, action, obj, canonical_json(details), prev, digest),
    )
    return AuditEntry(new_id, at_ms, actor, origin, action, obj, details, prev, digest)


def chain_break(entries: Sequence[Mapping[str, Any]]) -> int | None:
    """The id of the first entry whose id, link or hash does not hold, or None. `details` may be the stored
    JSON text or its value."""
    expected_id, prev = 1, GENESIS_HASH
    for row in entries:
        try:
            entry_id = int(row["id"])
            details = json.loads(row["details"]) if isinstance(row["details"], str) else row["details"]
            recomputed = entry_hash(entry_id, int(row["at_ms"]), row["actor"], row["origin"], row["action"],
                                    row["object"], details, prev)
        except (KeyError, TypeError, ValueError):
            return expected_id
        if entry_id != expected_id or row["prev_hash"] != prev or row["hash"] != recomputed:
            return entry_id
        expected_id, prev = entry_id + 1, row["hash"]
    return None


def _entry(row: Row) -> AuditEntry:
    return AuditEntry(
        int(row["id"]),
        int(row["at_ms"]),
        row["actor"],
        row["origin"],
        row["action"],
        row["object"],
        json.loads(row["details"]),
        row["prev_hash"],
        row["hash"],
    )


class AuditLog:
    def __init__(self, store: Store) -> None:
        self._store = store

    def append(
        self, actor: str, origin: str, action: str, obj: str, details: Mapping[str, Any], at_ms: int
    ) -> AuditEntry:
        """Append one entry in its own transaction. `origin` is the address the action came from."""
        with self._store.transaction() as tx:
            return append_entry(tx.sql, actor, origin, action, obj, details, at_ms)

    def _rows(self) -> list[Row]:
        with self._store.reader() as sql:
            return sql.query(f"SELECT {_COLUMNS} FROM audit_log ORDER BY id")

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry in id order; raises ValueError on details that are not JSON (use verify() to locate)."""
        for row in self._rows():
            yield _entry(row)

    def head(self) -> str:
        """The hash of the last entry (GENESIS_HASH when empty)."""
        with self._store.reader() as sql:
            rows = sql.query("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
        return str(rows[0]["hash"]) if rows else GENESIS_HASH

    def count_and_head(self) -> tuple[int, str]:
        """How many entries there are and the last one's hash, read together."""
        with self._store.reader() as sql:
            count = sql.query("SELECT COUNT(*) AS n FROM audit_log")[0]["n"]
            rows = sql.query("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
        return int(count), str(rows[0]["hash"]) if rows else GENESIS_HASH

    def rows(self) -> list[Row]:
        """Every entry as stored (details as its JSON text), in id order."""
        return self._rows()

    def verify(self) -> int | None:
        """Recompute the chain; return the id of the first entry that does not hold, or None when all do.
        A chain alone cannot show entries removed from its end, nor one rewritten and re-chained whole:
        check it against signed checkpoints (collector.audit_evidence) for that."""
        return chain_break(self._rows())

    def export(self, path: Path, checkpoints: Iterable[Mapping[str, Any]] = ()) -> int:
        """Write every entry, hashes included, as JSON Lines, then each signed checkpoint as a line
        `{"checkpoint": {...}}`; return how many entries. The file is created 0600."""
        count = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for entry in self.entries():
                out.write(canonical_json(asdict(entry)) + "\n")
                count += 1
            for cp in checkpoints:
                out.write(canonical_json({"checkpoint": cp}) + "\n")
        return count


def append_if_changed(
    sql: Sql,
    actor: str,
    origin: str,
    action: str,
    obj: str,
    details: Mapping[str, Any],
    at_ms: int,
    changed_action: str | None = None,
) -> AuditEntry | None:
    """Append unless the last entry about `obj` already says the same (`details` equal): for figures and files
    that are looked at often but change rarely (contracts, credits). `changed_action` names the entry when
    an earlier one about `obj` exists."""
    lock_chain(sql)  # before the read: two collectors starting at once record a changed contract once
    rows = sql.query("SELECT details FROM audit_log WHERE object = ? ORDER BY id DESC LIMIT 1", (obj,))
    if rows and json.loads(rows[0]["details"]) == json.loads(canonical_json(details)):
        return None
    name = changed_action if rows and changed_action else action
    return append_entry(sql, actor, origin, name, obj, details, at_ms)


def local_actor() -> tuple[str, str]:
    """(actor, origin) for a command run on this host: the OS user, and `cli@host`."""
    return getpass.getuser(), f"cli@{socket.gethostname()}"
