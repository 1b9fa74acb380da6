"""Versioned schema migrations, per component, in portable SQL.

A migration is `(component, version, sql)`; each store records what it applied in `schema_migrations`
and applies the rest in order, each in its own transaction. Versions count from 1 per component.

The SQL is written once for SQLite and PostgreSQL. The one macro, for what the dialects spell
differently is expanded by the store: `{id}`, an auto-numbered integer primary key. Payloads and JSON
bodies are TEXT; times are BIGINT milliseconds since the Unix epoch, UTC.

Adding a component's tables (e.g. ticketing): write `collector/ticketing/schema.py` with
`MIGRATIONS: list[Migration] = [Migration("ticketing", 1, "CREATE TABLE …")]` and add the module name to
`COMPONENT_SCHEMAS` below. Never edit an applied migration; append a new version instead.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple


class Migration(NamedTuple):
    component: str
    version: int
    sql: str


# Modules holding `MIGRATIONS: list[Migration]` for components other than the core store.
COMPONENT_SCHEMAS: tuple[str, ...] = (
    "collector.ticketing.schema",
    "collector.dispute_records",
    "collector.console.schema",
    "collector.escalation.schema",
    "collector.lifecycle_schema",
    "collector.change_records",
    "collector.remote_access.records",
    "collector.retention",
)

_CORE_V1 = """
CREATE TABLE agents (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    epoch TEXT NOT NULL,
    boot TEXT NOT NULL,
    version TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    heartbeat_interval_s INTEGER NOT NULL,
    birth_at BIGINT NOT NULL,
    birth_received_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    last_heartbeat BIGINT,
    last_heartbeat_received_at BIGINT,
    death_at BIGINT,
    death_reason TEXT,
    skew_ms BIGINT,
    skew_flagged INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site, agent)
);
CREATE TABLE targets (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    asset TEXT NOT NULL,
    criticality TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (site, agent, target)
);
CREATE TABLE events (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    epoch TEXT NOT NULL,
    seq BIGINT NOT NULL,
    boot TEXT NOT NULL,
    ts BIGINT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (site, agent, epoch, seq)
);
CREATE INDEX events_ts ON events (ts);
CREATE TABLE acks (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    epoch TEXT NOT NULL,
    through BIGINT NOT NULL,
    PRIMARY KEY (site, agent, epoch)
);
CREATE TABLE lost_ranges (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    epoch TEXT NOT NULL,
    from_seq BIGINT NOT NULL,
    to_seq BIGINT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (site, agent, epoch, from_seq)
);
CREATE TABLE state_changes (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    epoch TEXT NOT NULL,
    seq BIGINT NOT NULL,
    target TEXT NOT NULL,
    asset TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (site, agent, epoch, seq)
);
CREATE INDEX state_changes_at ON state_changes (at);
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT,
    asset TEXT,
    criticality TEXT,
    severity TEXT,
    state TEXT,
    reason TEXT,
    in_production INTEGER,
    targets TEXT NOT NULL,
    opened_at BIGINT,
    resolved_at BIGINT,
    resolve_reason TEXT
);
CREATE TABLE incident_updates (
    incident TEXT NOT NULL,
    at BIGINT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    in_production INTEGER NOT NULL,
    PRIMARY KEY (incident, at, severity, state)
);
CREATE TABLE changes (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    epoch TEXT NOT NULL,
    seq BIGINT NOT NULL,
    target TEXT NOT NULL,
    asset TEXT NOT NULL,
    what TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (site, agent, epoch, seq)
);
CREATE TABLE gaps (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    start_at BIGINT NOT NULL,
    end_at BIGINT,
    reason TEXT NOT NULL,
    boot TEXT NOT NULL,
    PRIMARY KEY (site, agent, start_at)
);
CREATE TABLE dead_letters (
    id {id},
    topic TEXT NOT NULL,
    site TEXT,
    agent TEXT,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE maintenance_windows (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_at BIGINT NOT NULL,
    end_at BIGINT NOT NULL,
    assets TEXT NOT NULL,
    services TEXT NOT NULL,
    announced_at BIGINT NOT NULL,
    announced_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    cancelled_at BIGINT
);
CREATE TABLE ticket_records (
    incident TEXT NOT NULL,
    kind TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    details TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (incident, kind, at)
);
"""

# v2: an incident event may leave `in_production` out (history imports); NULL means "not said".
_CORE_V2 = """
CREATE TABLE incident_updates_v2 (
    incident TEXT NOT NULL,
    at BIGINT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    in_production INTEGER,
    PRIMARY KEY (incident, at, severity, state)
);
INSERT INTO incident_updates_v2 (incident, at, severity, state, reason, in_production)
    SELECT incident, at, severity, state, reason, in_production FROM incident_updates;
DROP TABLE incident_updates;
ALTER TABLE incident_updates_v2 RENAME TO incident_updates
"""

# v3: a ticket record belongs to one contract's ticket ('' when it names none, e.g. imported history), so two
# vendors' tickets for one incident may record the same step in the same millisecond.
_CORE_V3 = """
CREATE TABLE ticket_records_v3 (
    incident TEXT NOT NULL,
    contract TEXT NOT NULL,
    kind TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    details TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (incident, contract, kind, at)
);
INSERT INTO ticket_records_v3 (incident, contract, kind, at, actor, details, source)
    SELECT incident, '', kind, at, actor, details, source FROM ticket_records;
DROP TABLE ticket_records;
ALTER TABLE ticket_records_v3 RENAME TO ticket_records
"""

# v4: events the collector received and refused (naming what their agent does not own, a gap not below its own
# seq): dead-lettered, and their seqs passed by the ack so the agent never stalls on them.
_CORE_V4 = """
CREATE TABLE refused_events (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    epoch TEXT NOT NULL,
    seq BIGINT NOT NULL,
    reason TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (site, agent, epoch, seq)
)
"""

# v6: what an agent's latest birth says is wrong with its outbox (disk full), NULL when nothing is.
_CORE_V6 = """
ALTER TABLE agents ADD COLUMN outbox_fault TEXT
"""

# v7: the stable cause code of a state change or incident (NULL: sent before cause codes, or imported
# without one), and the first seq a boot writes (NULL: an agent from before), which tells its events from
# those of the boot before it that it replays.
_CORE_V7 = """
ALTER TABLE state_changes ADD COLUMN cause TEXT;
ALTER TABLE incidents ADD COLUMN cause TEXT;
ALTER TABLE agents ADD COLUMN boot_seq BIGINT
"""

# v8: a maintenance window may select whole sites, lines (an agent's assets) and asset classes, and keeps when
# the collector received its announcement (NULL: recorded before v8, unknown) and why it was back-dated.
_CORE_V8 = """
ALTER TABLE maintenance_windows ADD COLUMN whole_site INTEGER NOT NULL DEFAULT 0;
ALTER TABLE maintenance_windows ADD COLUMN lines TEXT NOT NULL DEFAULT '[]';
ALTER TABLE maintenance_windows ADD COLUMN asset_classes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE maintenance_windows ADD COLUMN recorded_at BIGINT;
ALTER TABLE maintenance_windows ADD COLUMN backdate_reason TEXT NOT NULL DEFAULT ''
"""

# v14: the agent's outbox as its latest heartbeat reported it: events not yet acknowledged and the time of the
# oldest of them (both NULL: the heartbeat did not say, from an agent older than these fields; the time alone
# NULL: the outbox was empty).
_CORE_V14 = """
ALTER TABLE agents ADD COLUMN outbox_depth BIGINT;
ALTER TABLE agents ADD COLUMN oldest_unacked_at BIGINT
"""

# v15: every boot an agent announced (a birth), and the event batches that arrived before their boot's birth, held
# for it (docs/ingest.md, "Batches that come before their birth"); the boots born before v15 are the agents' latest.
_CORE_V15 = """
CREATE TABLE births (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    epoch TEXT NOT NULL,
    boot TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (site, agent, epoch, boot)
);
INSERT INTO births (site, agent, epoch, boot, received_at)
    SELECT site, agent, epoch, boot, birth_received_at FROM agents;
CREATE TABLE held_batches (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    epoch TEXT NOT NULL,
    boot TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    payload TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (site, agent, epoch, boot, first_seq, last_seq)
);
CREATE INDEX held_batches_received ON held_batches (received_at)
"""

CORE: list[Migration] = [
    Migration("core", 1, _CORE_V1),
    Migration("core", 2, _CORE_V2),
    Migration("core", 3, _CORE_V3),
    Migration("core", 4, _CORE_V4),
    Migration("core", 6, _CORE_V6),
    Migration("core", 7, _CORE_V7),
    Migration("core", 8, _CORE_V8),
    Migration("core", 14, _CORE_V14),
    Migration("core", 15, _CORE_V15),
]


def all_migrations() -> list[Migration]:
    """The core migrations followed by every registered component's, in registration order."""
    out = list(CORE)
    for module_name in COMPONENT_SCHEMAS:
        module = importlib.import_module(module_name)
        out.extend(module.MIGRATIONS)
    return out


def statements(sql: str) -> list[str]:
    """Split a migration into statements (migrations hold no semicolons inside literals)."""
    return [s.strip() for s in sql.split(";") if s.strip()]
