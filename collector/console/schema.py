"""The console's tables: local users (with their second factor) and their server-side sessions (component
"console"), and the indexes its pages read by (each target's latest state; one asset's changes over a
period; what changed in a month)."""

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

# Second factor: a user's TOTP secret and the last step used (a code counts once), one-time recovery codes
# (SHA-256 only), the secret offered during enrolment, when a session was last used (idle expiry), and
# failed logins by user and by address (lockout).
_V2 = """
ALTER TABLE console_users ADD COLUMN totp_secret TEXT;
ALTER TABLE console_users ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;
ALTER TABLE console_sessions ADD COLUMN pending_totp TEXT;
ALTER TABLE console_sessions ADD COLUMN last_seen_at BIGINT NOT NULL DEFAULT 0;
CREATE TABLE console_recovery_codes (
    username TEXT NOT NULL,
    code_sha256 TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (username, code_sha256)
);
CREATE TABLE console_login_failures (
    key TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX console_login_failures_key ON console_login_failures (key, at)
"""

# API tokens (the ticketing component's table; the console's users and the API's tokens share their login
# rules): an expiry (NULL: none), scopes (JSON list; NULL: every scope its role allows) and the token a
# rotation replaced it with.
_V3 = """
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN scopes TEXT;
ALTER TABLE api_tokens ADD COLUMN rotated_to TEXT
"""

# Users from single sign-on: the issuer and subject they log in as (NULL: a local user with a password).
_V4 = """
ALTER TABLE console_users ADD COLUMN external_issuer TEXT;
ALTER TABLE console_users ADD COLUMN external_subject TEXT
"""

MIGRATIONS: list[Migration] = [Migration("console", 1, _V1), Migration("console", 2, _V2), Migration("console", 3, _V3),
                               Migration("console", 4, _V4)]
