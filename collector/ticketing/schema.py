"""Tables of vendor tickets, their dispatch outbox, timers, API tokens and the audit log: the "ticketing"
component's migrations, applied by the store (collector/store/migrations.py) into the collector's one database.

Times are integer ms since the epoch (UTC). Ids are assigned by the code (max + 1 inside a write transaction,
after taking the `write_locks` row `audit`), which SQLite and PostgreSQL accept alike. The store splits
migrations on semicolons: none in comments.
"""

from __future__ import annotations

from collector.store.migrations import Migration

_V1 = """
CREATE TABLE ticket_dispatches (
    id BIGINT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    action TEXT NOT NULL,            -- create | update | comment | resolve
    dedup TEXT NOT NULL,             -- one row per (incident, contract, dedup): a repeated request is a no-op
    ticket TEXT NOT NULL,            -- the Ticket as JSON, at the time of the request
    note TEXT NOT NULL DEFAULT '',   -- comment text or resolution note
    actor TEXT NOT NULL,
    origin TEXT NOT NULL,
    state TEXT NOT NULL,             -- pending | in_flight | done | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL, -- when pending: not before, when in_flight: the claim's lease expiry
    last_error TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (incident_id, contract_id, dedup)
);
CREATE INDEX ticket_dispatches_due ON ticket_dispatches (state, next_attempt_at);

CREATE TABLE tickets (
    incident_id TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    vendor TEXT NOT NULL,
    sink TEXT NOT NULL,
    vendor_id TEXT NOT NULL,
    vendor_display TEXT NOT NULL,
    vendor_url TEXT,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,             -- open | resolved
    opened_at BIGINT NOT NULL,       -- incident opened at the edge
    raised_at BIGINT NOT NULL,       -- the vendor accepted the ticket
    updated_at BIGINT NOT NULL,
    resolved_at BIGINT,
    PRIMARY KEY (incident_id, contract_id)
);

CREATE TABLE audit_log (
    id BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    origin TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    details TEXT NOT NULL,           -- canonical JSON
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"""

# How an incident was routed (one row per incident and destination), and each vendor ticket's lifecycle.
_V2 = """
CREATE TABLE ticket_routes (
    incident_id TEXT NOT NULL,
    contract_id TEXT NOT NULL,       -- a contract id, or 'plant-it'
    decision TEXT NOT NULL,          -- vendor | plant_it | maintenance
    reason TEXT NOT NULL,
    severity TEXT NOT NULL,          -- the worst edge severity asked of the vendor so far
    restored_at BIGINT,              -- when the measured restoration was handled
    routed_at BIGINT NOT NULL,
    PRIMARY KEY (incident_id, contract_id)
);
ALTER TABLE tickets ADD COLUMN phase TEXT NOT NULL DEFAULT 'raised';
ALTER TABLE tickets ADD COLUMN vendor_severity TEXT;
ALTER TABLE tickets ADD COLUMN paused_since BIGINT;
ALTER TABLE tickets ADD COLUMN acknowledged_at BIGINT;
ALTER TABLE tickets ADD COLUMN closed_at BIGINT;

CREATE TABLE ticket_timers (
    id BIGINT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    name TEXT NOT NULL,              -- escalation:S1:0, reminder:3, rca
    kind TEXT NOT NULL,              -- escalation | reminder | rca
    clock TEXT NOT NULL,             -- response | resolution | none: which event makes the timer moot
    due_at BIGINT NOT NULL,
    details TEXT NOT NULL,           -- canonical JSON: contacts, basis
    fired_at BIGINT,
    cancelled_at BIGINT,
    UNIQUE (incident_id, contract_id, name)
);
CREATE INDEX ticket_timers_due ON ticket_timers (fired_at, cancelled_at, due_at);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL,
    role TEXT NOT NULL,              -- vendor | plant | admin
    vendor TEXT,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
)
"""

# Who holds a dispatch's claim: the collector's id and the boot (process start) that claimed it, so a collector
# restarted after a crash takes back its dead process's claims at once instead of waiting out their lease.
_V3 = """
ALTER TABLE ticket_dispatches ADD COLUMN claim_worker TEXT NOT NULL DEFAULT '';
ALTER TABLE ticket_dispatches ADD COLUMN claim_boot TEXT NOT NULL DEFAULT ''
"""

# The audit chain's head lock: a writer appending an entry (or numbering a dispatch or timer by max + 1) first
# updates this one row, so on PostgreSQL concurrent collectors append one after another instead of forking the
# chain (collector/audit.py, docs/scale-out.md).
_V4 = """
CREATE TABLE write_locks (
    name TEXT PRIMARY KEY,
    taken BIGINT NOT NULL DEFAULT 0
);
INSERT INTO write_locks (name, taken) VALUES ('audit', 0)
"""

MIGRATIONS: list[Migration] = [
    Migration("ticketing", 1, _V1),
    Migration("ticketing", 2, _V2),
    Migration("ticketing", 3, _V3),
    Migration("ticketing", 4, _V4),
]
