"""Tables of the "lifecycle" component: e-signature evidence imported for contracts (collector/esign.py).

Times are integer ms since the epoch (UTC); lists are JSON text. The store splits migrations on semicolons:
none in comments.
"""

from __future__ import annotations

from collector.store.migrations import Migration

_V1 = """
CREATE TABLE esign_evidence (
    id BIGINT PRIMARY KEY,
    contract_id TEXT NOT NULL,
    platform TEXT NOT NULL,
    envelope TEXT NOT NULL,
    document_sha256 TEXT NOT NULL,
    files TEXT NOT NULL,
    signers TEXT NOT NULL,
    events TEXT NOT NULL,
    completed_at BIGINT,
    imported_at BIGINT NOT NULL,
    imported_by TEXT NOT NULL,
    UNIQUE (contract_id, platform, envelope)
)
"""

MIGRATIONS: list[Migration] = [Migration("lifecycle", 1, _V1)]
