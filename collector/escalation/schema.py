"""Tables of escalation that reaches people: the "escalation" component's migrations.

`escalation_steps` marks a fired escalation level as planned (its notifications written), once per timer;
`escalation_notifications` holds one row per (level fired, notify entry, contact, channel): its delivery and
the person's acknowledgement. Times are integer ms since the epoch (UTC).
"""

from __future__ import annotations

from collector.store.migrations import Migration

_V1 = """
CREATE TABLE escalation_steps (
    timer_id BIGINT PRIMARY KEY,     -- the fired ticket_timers row
    incident_id TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    level INTEGER NOT NULL,
    fired_at BIGINT NOT NULL,        -- the moment whose on-call people are notified
    planned_at BIGINT NOT NULL
);

CREATE TABLE escalation_notifications (
    id BIGINT PRIMARY KEY,
    timer_id BIGINT NOT NULL,
    incident_id TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    level INTEGER NOT NULL,
    entry TEXT NOT NULL,             -- the contract's notify entry: a contact id or on-call:vendor|plant:<level>
    contact_id TEXT NOT NULL,        -- '' when the entry reached nobody
    contact_name TEXT NOT NULL,
    channel TEXT NOT NULL,           -- email | webhook | pagerduty | none
    address TEXT NOT NULL,           -- what was addressed (e-mail, webhook host), never a secret
    state TEXT NOT NULL,             -- pending | sent | failed | unresolved
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    acknowledged_at BIGINT,
    acknowledged_by TEXT,
    UNIQUE (timer_id, entry, contact_id, channel)
);
CREATE INDEX escalation_notifications_due ON escalation_notifications (state, next_attempt_at);
CREATE INDEX escalation_notifications_ticket ON escalation_notifications (contract_id, incident_id)
"""

MIGRATIONS: list[Migration] = [Migration("escalation", 1, _V1)]
