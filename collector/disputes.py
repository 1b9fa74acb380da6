"""Disputes: a vendor disputes one field of one incident under one of its contracts; plant IT settles it.

    open_dispute(store, book, evidence_dir, contract_id, incident_id, vendor, field, value, reason, ...)
    settle_dispute(store, dispute_id, outcome, reason, value, actor, origin, now_ms)
    list_disputes(store, vendor=None, contract_id=None, incident_id=None, state=None)
    get_dispute(store, dispute_id)
    evidence_path(evidence_dir, record, sha256)

Both steps are audit-logged ("dispute.opened", "dispute.settled", object `dispute/<id>`) in the
transaction that records them. Evidence files are kept in `evidence_dir` under their SHA-256, mode 0600;
their names, hashes and sizes are in the dispute and its audit entry. The rules the reports apply are in
linewarden/sla/disputes.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from collector.audit import append_entry
from collector.dispute_records import DisputeRecord, Evidence, query
from collector.reporting import incident_input, parse_as_of
from collector.store import Store
from collector.store.rows import IncidentRow
from collector.ticketing.lifecycle import get_ticket
from linewarden.book import ContractBook
from linewarden.errors import LinewardenError
from linewarden.sla.disputes import FIELDS, OUTCOMES, TIMING_FIELDS, Value, current_value, parse_value

MAX_EVIDENCE_FILES = 5
MAX_EVIDENCE_BYTES = 5 * 1024 * 1024  # per file
MAX_LINKS = 10
MAX_REASON = 2000
_LINK = re.compile(r"^https?://[^\s\x00]{1,2000}$")
_NAME = re.compile(r"[^A-Za-z0-9._ -]")


class DisputeError(LinewardenError):
    """A dispute step that cannot be done; the message says why."""


class DisputeNotFound(DisputeError):
    """No such dispute, incident or contract."""


class DisputeForbidden(DisputeError):
    """The incident or dispute belongs to another vendor's contract."""


class DisputeRefused(DisputeError):
    """A value, reason, link or file that is not acceptable."""


class DisputeStateError(DisputeError):
    """Already settled, or the same field of the incident already disputed and open."""


@dataclass(frozen=True)
class EvidenceFile:
    name: str
    content: bytes


def _reason(text: str) -> str:
    text = text.strip()
    if not text or len(text) > MAX_REASON or "\x00" in text:
        raise DisputeRefused(f"give a reason of 1 to {MAX_REASON} characters (no NUL)")
    return text


def _checked(field: str, value: object) -> int | str | bool:
    """`parse_value`, with a time also given as ISO 8601 with its zone."""
    if isinstance(value, str) and "\x00" in value:  # PostgreSQL refuses NUL in text
        raise DisputeRefused(f"{field}: no NUL characters")
    try:
        if field in TIMING_FIELDS and isinstance(value, str):
            value = parse_as_of(value)
        return parse_value(field, value)
    except ValueError as exc:
        raise DisputeRefused(str(exc)) from None


def evidence_path(evidence_dir: Path, record: DisputeRecord, sha256: str) -> Path | None:
    """The stored file of one of the dispute's evidence items (None: not one of its items, or gone)."""
    if not any(e.sha256 == sha256 for e in record.evidence):
        return None
    path = evidence_dir / sha256
    return path if path.is_file() else None


def _incident(store: Store, incident_id: str) -> IncidentRow | None:
    if "\x00" in incident_id:
        return None
    with store.reader() as sql:
        rows = sql.query("SELECT opened_at FROM incidents WHERE id = ?", (incident_id,))
    if not rows or rows[0]["opened_at"] is None:
        return None
    opened = int(rows[0]["opened_at"])
    return next((r for r in store.incidents(opened, opened + 1) if r.id == incident_id), None)


def _save(evidence_dir: Path, files: Sequence[EvidenceFile]) -> tuple[Evidence, ...]:
    if len(files) > MAX_EVIDENCE_FILES:
        raise DisputeRefused(f"at most {MAX_EVIDENCE_FILES} evidence files")
    for f in files:
        if len(f.content) > MAX_EVIDENCE_BYTES:
            raise DisputeRefused(f"evidence {f.name!r} is over {MAX_EVIDENCE_BYTES} bytes")
    saved = []
    if files:
        evidence_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for f in files:
        digest = hashlib.sha256(f.content).hexdigest()
        path = evidence_dir / digest
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(f.content)
        os.chmod(path, 0o600)  # an older file of the same content may have been created otherwise
        name = _NAME.sub("_", f.name.strip())[:200] or "evidence"
        saved.append(Evidence(name, digest, len(f.content)))
    return tuple(saved)


def open_dispute(
    store: Store,
    book: ContractBook,
    evidence_dir: Path,
    contract_id: str,
    incident_id: str,
    vendor: str,
    field: str,
    value: object,
    reason: str,
    links: Sequence[str],
    files: Sequence[EvidenceFile],
    actor: str,
    origin: str,
    now_ms: int,
) -> DisputeRecord:
    """`vendor` disputes `field` of the incident under its contract, proposing `value` (a time in ms or as
    ISO 8601 with its zone, S1-S4, true/false for excluded, text for cause). The incident must be
    one of that contract's (its ticket, or an asset in its scope). Raises DisputeNotFound, DisputeForbidden,
    DisputeRefused or DisputeStateError."""
    contract = book.contracts.get(contract_id)
    if contract is None:
        raise DisputeNotFound(f"no contract {contract_id!r}")
    if contract.contract.vendor != vendor:
        raise DisputeForbidden("this contract belongs to another vendor")
    if field not in FIELDS:
        raise DisputeRefused(f"no such field {field!r}: one of {', '.join(FIELDS)}")
    row = _incident(store, incident_id)
    incident = None if row is None else incident_input(row, contract_id, now_ms)
    if row is None or incident is None:
        raise DisputeNotFound(f"no incident {incident_id!r} that a contract measures")
    classes = {c.value for c in contract.scope.asset_classes}
    in_scope = contract in book.covering(incident.asset) or (
        row.criticality in classes and incident.asset not in contract.scope.exclude_assets
    )
    if not in_scope and get_ticket(store, contract_id, incident_id) is None:
        raise DisputeNotFound(f"incident {incident_id} is not under contract {contract_id}")
    proposed = _checked(field, value)
    disputed = current_value(incident, field)
    if proposed == disputed:
        raise DisputeRefused(f"{field} is already {disputed!r}: nothing to dispute")
    text = _reason(reason)
    if len(links) > MAX_LINKS or not all(_LINK.match(link) for link in links):
        raise DisputeRefused(f"links: at most {MAX_LINKS}, each an http(s) URL")
    with store.transaction() as tx:
        pending = query(tx.sql, contract_id=contract_id, incident_id=incident_id, state="open")
        if any(d.field == field for d in pending):
            raise DisputeStateError(f"{field} of {incident_id} is already disputed and not settled")
        evidence = _save(evidence_dir, files)
        count = tx.sql.query("SELECT COUNT(*) AS n FROM disputes")[0]["n"]
        record = DisputeRecord(
            id=f"d-{int(count) + 1}", incident_id=incident_id, contract_id=contract_id, vendor=vendor, field=field,
            disputed_value=disputed, proposed_value=proposed, reason=text, links=tuple(links), evidence=evidence,
            opened_by=actor, opened_at=now_ms, outcome=None, settled_value=None, settle_reason=None,
            settled_by=None, settled_at=None,
        )  # fmt: skip
        tx.sql.execute(
            "INSERT INTO disputes (id, incident_id, contract_id, vendor, field, disputed_value, proposed_value,"
            " reason, links, evidence, opened_by, opened_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record.id, incident_id, contract_id, vendor, field, json.dumps(disputed), json.dumps(proposed), text,
             json.dumps(list(links)), json.dumps([e.__dict__ for e in evidence]), actor, now_ms),
        )  # fmt: skip
        details = {k: v for k, v in record.as_dict().items() if k not in ("id", "outcome", "settled_value",
                   "settle_reason", "settled_by", "settled_at", "state")}  # fmt: skip
        append_entry(tx.sql, actor, origin, "dispute.opened", f"dispute/{record.id}", details, now_ms)
    return record


def settle_dispute(
    store: Store,
    dispute_id: str,
    outcome: str,
    reason: str,
    value: object,
    actor: str,
    origin: str,
    now_ms: int,
) -> DisputeRecord:
    """Plant IT's decision: "accepted" (the proposed value holds), "amended" (`value` holds) or "rejected"
    (the measured value stays). Raises DisputeNotFound, DisputeRefused or DisputeStateError."""
    if outcome not in OUTCOMES:
        raise DisputeRefused(f"outcome: one of {', '.join(OUTCOMES)}")
    text = _reason(reason)
    with store.transaction() as tx:
        found = query(tx.sql, dispute_id=dispute_id)
        if not found:
            raise DisputeNotFound(f"no dispute {dispute_id!r}")
        d = found[0]
        if d.outcome is not None:
            raise DisputeStateError(f"dispute {dispute_id} was settled already ({d.outcome})")
        settled: Value = None
        if outcome == "accepted":
            settled = d.proposed_value
        elif outcome == "amended":
            settled = _checked(d.field, value)
        tx.sql.execute(
            "UPDATE disputes SET outcome = ?, settled_value = ?, settle_reason = ?, settled_by = ?, settled_at = ?"
            " WHERE id = ? AND outcome IS NULL",
            (outcome, None if settled is None else json.dumps(settled), text, actor, now_ms, dispute_id),
        )
        details = {"incident_id": d.incident_id, "contract_id": d.contract_id, "field": d.field, "outcome": outcome,
                   "disputed_value": d.disputed_value, "proposed_value": d.proposed_value,
                   "settled_value": settled, "reason": text}  # fmt: skip
        append_entry(tx.sql, actor, origin, "dispute.settled", f"dispute/{dispute_id}", details, now_ms)
        return query(tx.sql, dispute_id=dispute_id)[0]


def list_disputes(
    store: Store,
    vendor: str | None = None,
    contract_id: str | None = None,
    incident_id: str | None = None,
    state: str | None = None,
) -> list[DisputeRecord]:
    """Disputes, oldest first; a vendor's only when `vendor` is given; `state` "open" or "settled"."""
    with store.reader() as sql:
        return query(sql, vendor=vendor, contract_id=contract_id, incident_id=incident_id, state=state)


def get_dispute(store: Store, dispute_id: str) -> DisputeRecord | None:
    with store.reader() as sql:
        found = query(sql, dispute_id=dispute_id)
    return found[0] if found else None
