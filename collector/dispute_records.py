"""The `disputes` table (component "disputes") and its rows: what reports read; the workflow that writes
them is collector/disputes.py.

Values (disputed, proposed, settled) are stored as JSON: ms for times, "S1"–"S4", true/false, text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from collector.store.base import Row, Sql, Store
from collector.store.migrations import Migration
from linewarden.sla.disputes import Value, category
from linewarden.sla.results import DisputeNote

_V1 = """
CREATE TABLE disputes (
    id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    vendor TEXT NOT NULL,
    field TEXT NOT NULL,
    disputed_value TEXT NOT NULL,
    proposed_value TEXT NOT NULL,
    reason TEXT NOT NULL,
    links TEXT NOT NULL,
    evidence TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    outcome TEXT,
    settled_value TEXT,
    settle_reason TEXT,
    settled_by TEXT,
    settled_at BIGINT
);
CREATE INDEX disputes_contract ON disputes (contract_id, incident_id)
"""

MIGRATIONS: list[Migration] = [Migration("disputes", 1, _V1)]


@dataclass(frozen=True)
class Evidence:
    """A file kept in the collector's evidence directory under its SHA-256."""

    name: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class DisputeRecord:
    id: str
    incident_id: str
    contract_id: str
    vendor: str
    field: str
    disputed_value: Value
    proposed_value: Value
    reason: str
    links: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    opened_by: str
    opened_at: int
    outcome: str | None
    settled_value: Value
    settle_reason: str | None
    settled_by: str | None
    settled_at: int | None

    @property
    def state(self) -> str:
        return "open" if self.outcome is None else "settled"

    def note(self) -> DisputeNote:
        return DisputeNote(
            id=self.id,
            incident_id=self.incident_id,
            field=self.field,
            category=category(self.field),
            state="open" if self.outcome is None else "settled",
            outcome=self.outcome,
            disputed_value=self.disputed_value,
            proposed_value=self.proposed_value,
            settled_value=self.settled_value,
            reason=self.reason,
            settle_reason=self.settle_reason,
            opened_by=self.opened_by,
            opened_ms=self.opened_at,
            settled_by=self.settled_by,
            settled_ms=self.settled_at,
        )

    def as_dict(self) -> dict[str, Any]:
        """The API's and CLI's JSON form: times in ms since the epoch."""
        return {
            "id": self.id,
            "incident_id": self.incident_id,
            "contract_id": self.contract_id,
            "vendor": self.vendor,
            "field": self.field,
            "category": category(self.field),
            "state": self.state,
            "disputed_value": self.disputed_value,
            "proposed_value": self.proposed_value,
            "reason": self.reason,
            "links": list(self.links),
            "evidence": [e.__dict__ for e in self.evidence],
            "opened_by": self.opened_by,
            "opened_at": self.opened_at,
            "outcome": self.outcome,
            "settled_value": self.settled_value,
            "settle_reason": self.settle_reason,
            "settled_by": self.settled_by,
            "settled_at": self.settled_at,
        }


def _record(r: Row) -> DisputeRecord:
    settled = r["settled_value"]
    return DisputeRecord(
        id=r["id"],
        incident_id=r["incident_id"],
        contract_id=r["contract_id"],
        vendor=r["vendor"],
        field=r["field"],
        disputed_value=json.loads(r["disputed_value"]),
        proposed_value=json.loads(r["proposed_value"]),
        reason=r["reason"],
        links=tuple(json.loads(r["links"])),
        evidence=tuple(Evidence(**e) for e in json.loads(r["evidence"])),
        opened_by=r["opened_by"],
        opened_at=int(r["opened_at"]),
        outcome=r["outcome"],
        settled_value=None if settled is None else json.loads(settled),
        settle_reason=r["settle_reason"],
        settled_by=r["settled_by"],
        settled_at=None if r["settled_at"] is None else int(r["settled_at"]),
    )


def query(
    sql: Sql,
    *,
    contract_id: str | None = None,
    vendor: str | None = None,
    incident_id: str | None = None,
    dispute_id: str | None = None,
    state: str | None = None,
) -> list[DisputeRecord]:
    """Disputes matching every filter given (`state` "open" or "settled"), oldest first."""
    where, params = [], []
    if any("\x00" in v for v in (contract_id, vendor, incident_id, dispute_id) if v):
        return []  # nothing stored holds NUL, and PostgreSQL refuses it in a parameter
    for column, value in (("contract_id", contract_id), ("vendor", vendor), ("incident_id", incident_id),
                          ("id", dispute_id)):  # fmt: skip
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if state == "open":
        where.append("outcome IS NULL")
    elif state == "settled":
        where.append("outcome IS NOT NULL")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return [_record(r) for r in sql.query(f"SELECT * FROM disputes{clause} ORDER BY opened_at, id", params)]


def contract_notes(store: Store, contract_id: str) -> list[DisputeNote]:
    """Every dispute under one contract, as reports show them."""
    with store.reader() as sql:
        return [r.note() for r in query(sql, contract_id=contract_id)]
