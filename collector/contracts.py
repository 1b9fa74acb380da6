"""Contracts in the audit log: each contract file is recorded when it is new or its bytes changed."""

from __future__ import annotations

from collector.audit import append_if_changed
from collector.store import Store
from linewarden.book import ContractBook


def record_contracts(store: Store, book: ContractBook, at_ms: int, actor: str, origin: str) -> int:
    """Put each contract file into the audit log when it is new or its bytes changed; returns how many."""
    count = 0
    with store.transaction() as tx:
        for cid, (path, digest) in sorted(book.files.items()):
            c = book.contracts[cid]
            details = {
                "file": path,
                "sha256": digest,
                "vendor": c.contract.vendor,
                "document_sha256": c.contract.document_sha256,
                "fee_per_period": str(c.contract.fee_per_period),
                "currency": c.contract.currency,
            }
            obj = f"contract/{cid}"
            if append_if_changed(tx.sql, actor, origin, "contract.loaded", obj, details, at_ms, "contract.changed"):
                count += 1
    return count
