"""The console's tables: local users and their server-side sessions (component "console"), and the indexes
its pages read by (each target's latest state; one asset's changes over a period; what changed in a month)."""

from __future__ import annotations

from collector.store.migrations import Migration

_V1 = """
CREATE TABLE console_users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    vendor TEXT,
    sites TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    disabled_at BIGINT
);
CREATE TABLE console_sessions (
    id_sha256 TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    state TEXT NOT NULL,
    method TEXT NOT NULL,
    csrf TEXT NOT NULL,
    origin TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX console_sessions_user ON console_sessions (username);
CREATE INDEX console_state_changes_target ON state_changes (site, agent, target, at);
CREATE INDEX console_state_changes_asset ON state_changes (asset, at);
CREATE INDEX console_incident_updates_at ON incident_updates (at);
CREATE INDEX console_ticket_records_at ON ticket_records (at);
CREATE INDEX console_incidents_opened ON incidents (opened_at);
CREATE INDEX console_incidents_resolved ON incidents (resolved_at);
CREATE INDEX console_changes_at ON changes (at)
"""

MIGRATIONS: list[Migration] = [Migration("console", 1, _V1)]
