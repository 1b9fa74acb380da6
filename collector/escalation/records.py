"""Escalation notices as the ticket's record shows them, and a person's acknowledgement of one."""

from __future__ import annotations

from typing import Any

from collector.audit import append_entry
from collector.store.base import Sql, Store
from linewarden.errors import TicketNotFound


def ticket_object(contract_id: str, incident: str) -> str:
    return f"ticket/{contract_id}/{incident}"


def notifications(sql: Sql, contract_id: str, incident: str) -> list[dict[str, Any]]:
    """The ticket's escalation notifications with their delivery and acknowledgement, oldest first."""
    rows = sql.query(
        "SELECT id, level, entry, contact_id, contact_name, channel, address, state, attempts, last_error,"
        " created_at, sent_at, acknowledged_at, acknowledged_by FROM escalation_notifications"
        " WHERE contract_id = ? AND incident_id = ? ORDER BY id",
        (contract_id, incident),
    )
    return [dict(r) for r in rows]


def acknowledge(store: Store, contract_id: str, incident: str, notification: int, actor: str, origin: str,
                now: int) -> dict[str, Any]:
    """The person acknowledges an escalation notice (once; a repeat answers the first acknowledgement)."""
    with store.transaction() as tx:
        found = tx.sql.query(
            "SELECT * FROM escalation_notifications WHERE id = ? AND contract_id = ? AND incident_id = ?",
            (notification, contract_id, incident),
        )
        if not found:
            raise TicketNotFound(f"no escalation notice {notification} on ticket {contract_id}/{incident}")
        if found[0]["acknowledged_at"] is None:
            tx.sql.execute(
                "UPDATE escalation_notifications SET acknowledged_at = ?, acknowledged_by = ? WHERE id = ?",
                (now, actor, notification),
            )
            append_entry(tx.sql, actor, origin, "ticket.escalation_acknowledged", ticket_object(contract_id, incident),
                         {"notification": notification, "contact": found[0]["contact_id"]}, now)
        rows = notifications(tx.sql, contract_id, incident)
    return next(r for r in rows if r["id"] == notification)
