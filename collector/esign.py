"""E-signature evidence of contracts: imported from the platforms' exports (collector/esign_formats.py),
checked against the contract's signed-document SHA-256, kept in table `esign_evidence` with the files
themselves in `<data_dir>/esign/<sha256>` (0600), and audit-logged (`contract.esign_imported`, or
`contract.esign_refused` with the reason when the signed document is not the contract's)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.audit import append_entry
from collector.esign_formats import (
    PLATFORMS,
    EsignRefused,
    Evidence,
    Platform,
    adobe_sign,
    docusign,
    signnow,
)
from collector.store.base import Store
from linewarden.book import ContractBook
from linewarden.files import write_private

ESIGN_DIR = "esign"
# The files each platform's evidence is made of (besides the signed document).
FILES: dict[Platform, tuple[str, ...]] = {
    "docusign": ("audit_events", "envelope"),
    "signnow": ("history",),
    "adobe_sign": ("events",),
}


@dataclass(frozen=True)
class EsignRecord:
    id: int
    contract_id: str
    platform: str
    envelope: str
    document_sha256: str
    files: tuple[dict[str, Any], ...]
    signers: tuple[dict[str, Any], ...]
    events: tuple[dict[str, Any], ...]
    completed_at: int | None
    imported_at: int
    imported_by: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "contract": self.contract_id, "platform": self.platform, "envelope": self.envelope,
                "document_sha256": self.document_sha256, "files": list(self.files), "signers": list(self.signers),
                "events": list(self.events), "completed_at_ms": self.completed_at, "imported_at_ms": self.imported_at,
                "imported_by": self.imported_by}


def parse(platform: str, files: dict[str, bytes], envelope: str | None) -> Evidence:
    """The evidence in a platform's files (named as in FILES). Raises EsignRefused."""
    if platform not in PLATFORMS:
        raise EsignRefused(f"unknown platform {platform!r}: one of {', '.join(PLATFORMS)}")
    missing = [name for name in FILES[platform] if name not in files]
    if missing:
        raise EsignRefused(f"{platform} evidence needs {', '.join(missing)}")
    if platform == "docusign":
        return docusign(files["audit_events"], files["envelope"])
    if platform == "signnow":
        return signnow(files["history"])
    if not envelope:
        raise EsignRefused("adobe_sign evidence needs the agreement id (its events do not name it)")
    return adobe_sign(files["events"], envelope)


def import_evidence(
    store: Store, book: ContractBook, data_dir: Path, contract_id: str, platform: str, files: dict[str, bytes],
    document: bytes, envelope: str | None, actor: str, origin: str, now_ms: int,
) -> tuple[EsignRecord, bool]:
    """Check and keep one contract's evidence; (the record, False) when it was imported before. Raises
    EsignRefused for a malformed export, another envelope than `envelope`, or a signed document whose SHA-256
    is not the contract's (that refusal is audit-logged)."""
    contract = book.contract(contract_id)
    evidence = parse(platform, files, envelope)
    if envelope and evidence.envelope != envelope:
        raise EsignRefused(f"the export is of {evidence.envelope!r}, not of {envelope!r}")
    digest = hashlib.sha256(document).hexdigest()
    expected = contract.contract.document_sha256
    obj = f"esign/{contract_id}/{evidence.platform}/{evidence.envelope}"
    if digest != expected:
        with store.transaction() as tx:
            append_entry(tx.sql, actor, origin, "contract.esign_refused", obj,
                         {"contract": contract_id, "document_sha256": digest, "expected": expected}, now_ms)
        raise EsignRefused(f"the signed document has SHA-256 {digest}; contract {contract_id} records {expected}: "
                           "it is not the signed contract")
    kept = []
    for name, data in sorted({**files, "document": document}.items()):
        sha = hashlib.sha256(data).hexdigest()
        write_private(data_dir / ESIGN_DIR / sha, data)
        kept.append({"name": name, "sha256": sha, "bytes": len(data)})
    signers = [s.as_dict() for s in evidence.signers]
    with store.transaction() as tx:
        found = tx.sql.query("SELECT id FROM esign_evidence WHERE contract_id = ? AND platform = ? AND envelope = ?",
                             (contract_id, evidence.platform, evidence.envelope))
        if found:
            record_id, added = int(found[0]["id"]), False
        else:
            rows = tx.sql.query("SELECT MAX(id) AS id FROM esign_evidence")
            record_id, added = int(rows[0]["id"] or 0) + 1, True
            tx.sql.execute(
                "INSERT INTO esign_evidence (id, contract_id, platform, envelope, document_sha256, files, signers,"
                " events, completed_at, imported_at, imported_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record_id, contract_id, evidence.platform, evidence.envelope, digest, json.dumps(kept),
                 json.dumps(signers), json.dumps([e.as_dict() for e in evidence.events]), evidence.completed_at_ms,
                 now_ms, actor),
            )  # fmt: skip
            append_entry(tx.sql, actor, origin, "contract.esign_imported", obj,
                         {"contract": contract_id, "platform": evidence.platform, "envelope": evidence.envelope,
                          "document_sha256": digest, "files": kept, "signers": signers,
                          "completed_at_ms": evidence.completed_at_ms}, now_ms)  # fmt: skip
    [record] = [r for r in evidence_of(store, contract_id) if r.id == record_id]
    return record, added


def evidence_of(store: Store, contract_id: str) -> list[EsignRecord]:
    with store.reader() as sql:
        rows = sql.query("SELECT * FROM esign_evidence WHERE contract_id = ? ORDER BY id", (contract_id,))
    return [
        EsignRecord(int(r["id"]), r["contract_id"], r["platform"], r["envelope"], r["document_sha256"],
                    tuple(json.loads(r["files"])), tuple(json.loads(r["signers"])), tuple(json.loads(r["events"])),
                    r["completed_at"], int(r["imported_at"]), r["imported_by"])
        for r in rows
    ]
