"""Escalation that reaches people: when a ticket's escalation level fires (collector/ticketing/timers.py), notify
the right person for that moment on each of their channels, record the delivery, and take their acknowledgement.

Planning: a fired escalation timer not yet planned gets, in one transaction, its `escalation_steps` mark and one
`escalation_notifications` row per (notify entry, contact, channel). The entries are the level's `notify`, or
`notify_outside_coverage` when the level fired outside the support calendar (the rule the timer's own comment
follows). An entry is a contact id or `on-call:vendor|plant:<level>`, looked up in the rota at the moment the
level fired (linewarden/rota.py); an entry that reaches nobody is recorded `unresolved`, never silently dropped.
Delivery: each pending row is sent as its own "ticket" through the e-mail, webhook or PagerDuty sink with an
idempotency key of its own (`<incident>-esc-<row id>`), so a retry after a lost answer is deduplicated by the
receiver; a failure waits `retry_wait` (doubling) and the row fails for good after `attempts`.
Acknowledgement: `acknowledge` (API: POST /tickets/{contract}/{incident}/escalations/{id}/acknowledge).
Between rounds the notifier sleeps until a level fires in this process (`wake`), until the next notice is due,
at most the safety poll (collector/wakeup.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from collector.audit import append_entry
from collector.escalation.channels import address, channel_sink
from collector.escalation.records import ticket_object
from collector.store.base import Row, Sql, Store
from collector.ticketing import timers
from collector.ticketing.base import Ticket
from collector.wakeup import SAFETY_POLL_S, Wakeup, sleep_s
from linewarden.book import ContractBook
from linewarden.config.collector import EscalationConfig
from linewarden.errors import TicketRejected
from linewarden.rota import Directory

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 30.0
BATCH = 32


class EscalationNotifier:
    def __init__(
        self, store: Store, book: ContractBook, directory: Directory, config: EscalationConfig,
        clock: Callable[[], int], origin: str,
    ) -> None:
        self._store = store
        self._book = book
        self._directory = directory
        self._config = config
        self._clock = clock
        self._origin = origin
        self._wake = Wakeup()

    def wake(self) -> None:
        """An escalation level fired in this process: plan and send its notices now; from any thread."""
        self._wake.set()

    async def run(self, stop: asyncio.Event, poll_s: float = SAFETY_POLL_S) -> None:
        """Plan and send until `stop` is set; between rounds, sleep until woken or the next notice is due, at
        most `poll_s` (the safety poll)."""
        while not stop.is_set():
            started = self._clock()
            due: int | None = started
            try:
                await self.run_once()
                due = self.next_due()
            except Exception:
                log.exception("escalation round failed; pending notifications are tried again next round")
            await self._wake.wait(sleep_s(started, self._clock(), due, poll_s), stop)

    def next_due(self) -> int | None:
        """When the next pending notice is due (a retry, or a lease after a crash mid-send); None: none is."""
        with self._store.reader() as sql:
            rows = sql.query("SELECT MIN(next_attempt_at) AS due FROM escalation_notifications WHERE state = 'pending'")
        return None if not rows or rows[0]["due"] is None else int(rows[0]["due"])

    async def run_once(self) -> int:
        """Plan the newly fired levels, send what is due; return how many notifications were sent."""
        self.plan()
        due = self._due()
        sent = await asyncio.gather(*(self._deliver(row) for row in due))
        return sum(sent)

    # ------------------------------------------------------------ planning

    def plan(self) -> int:
        """Write the notifications of every fired, unplanned escalation level; return how many levels."""
        now = self._clock()
        with self._store.reader() as sql:
            fired = sql.query(
                "SELECT t.* FROM ticket_timers t WHERE t.kind = 'escalation' AND t.fired_at IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM escalation_steps s WHERE s.timer_id = t.id) ORDER BY t.id"
            )
        for timer in fired:
            with self._store.transaction() as tx:
                self._plan_one(tx.sql, timer, now)
        return len(fired)

    def _plan_one(self, sql: Sql, timer: Row, now: int) -> None:
        incident, contract_id = timer["incident_id"], timer["contract_id"]
        details: dict[str, Any] = json.loads(timer["details"])
        fired_at = int(timer["fired_at"])
        claimed = sql.execute(
            "INSERT INTO escalation_steps (timer_id, incident_id, contract_id, level, fired_at, planned_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (timer_id) DO NOTHING",
            (timer["id"], incident, contract_id, int(details.get("level", 0)), fired_at, now),
        )
        if not claimed:
            return
        contract = self._book.contracts.get(contract_id)
        site_rows = sql.query("SELECT site FROM incidents WHERE id = ?", (incident,))
        site = str(site_rows[0]["site"]) if site_rows else ""
        entries = list(details.get("notify") or [])
        due_at = int(timer["due_at"])
        inside = contract is None or timers.coverage(self._book, contract).is_open(due_at)
        if not inside and details.get("notify_outside_coverage"):
            entries = list(details["notify_outside_coverage"])
        vendor = contract.contract.vendor if contract is not None else ""
        recorded = []
        for entry in entries:
            recipient = self._directory.resolve(str(entry), vendor, site, fired_at)
            contact = recipient.contact
            if contact is None:
                self._insert(sql, timer, details, str(entry), "", "", "none", "", "unresolved", recipient.problem, now)
                recorded.append({"entry": entry, "problem": recipient.problem})
                continue
            for channel in contact.channels:
                self._insert(sql, timer, details, str(entry), contact.id, contact.name, channel,
                             address(contact, channel), "pending", "", now)
            recorded.append({"entry": entry, "contact": contact.id, "channels": list(contact.channels)})
        append_entry(sql, "collector", self._origin, "ticket.escalation_planned", ticket_object(contract_id, incident),
                     {"level": details.get("level"), "fired_at": fired_at, "recipients": recorded}, now)

    @staticmethod
    def _insert(sql: Sql, timer: Row, details: dict[str, Any], entry: str, contact: str, name: str, channel: str,
                addr: str, state: str, error: str, now: int) -> None:
        sql.execute(
            "INSERT INTO escalation_notifications (id, timer_id, incident_id, contract_id, level, entry, contact_id,"
            " contact_name, channel, address, state, next_attempt_at, last_error, created_at)"
            " SELECT COALESCE(MAX(id), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM escalation_notifications"
            " WHERE TRUE ON CONFLICT (timer_id, entry, contact_id, channel) DO NOTHING",
            (timer["id"], timer["incident_id"], timer["contract_id"], int(details.get("level", 0)), entry, contact,
             name, channel, addr, state, now, error, now),
        )

    # ------------------------------------------------------------ delivery

    def _due(self) -> list[Row]:
        now = self._clock()
        with self._store.transaction() as tx:
            rows = tx.sql.query(
                "SELECT * FROM escalation_notifications WHERE state = 'pending' AND next_attempt_at <= ?"
                " ORDER BY next_attempt_at, id LIMIT ?",
                (now, BATCH),
            )
            lease = now + int((SEND_TIMEOUT_S + 5) * 1000)  # a crash mid-send: tried again after the lease
            for row in rows:
                tx.sql.execute(
                    "UPDATE escalation_notifications SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ?",
                    (lease, row["id"]),
                )
        return rows

    async def _deliver(self, row: Row) -> bool:
        contact = self._directory.contacts.get(row["contact_id"])
        with self._store.reader() as sql:
            ticket = timers.current_ticket(sql, row["incident_id"], row["contract_id"])
        try:
            if contact is None or ticket is None:
                raise TicketRejected("the contact or the ticket is gone from the configuration")
            sink = channel_sink(contact, row["channel"], self._config)
            try:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await sink.create(self._notice(row, ticket))
            finally:
                await sink.aclose()
        except TicketRejected as exc:
            self._outcome(row, "failed", str(exc))
            return False
        except Exception as exc:  # TicketError, a timeout, a sink's bug: tried again after the wait
            attempts = int(row["attempts"]) + 1
            self._outcome(row, "failed" if attempts >= self._config.attempts else "pending",
                          f"{type(exc).__name__}: {exc}")
            return False
        self._outcome(row, "sent", "")
        return True

    def _notice(self, row: Row, ticket: Ticket) -> Ticket:
        path = f"/tickets/{row['contract_id']}/{row['incident_id']}/escalations/{row['id']}/acknowledge"
        text = (
            f"{row['contact_name']}: ticket {ticket.idempotency_key} ({ticket.title}) reached escalation level"
            f" {row['level']} and you are the contact for {row['entry']} now.\n"
            f"Acknowledge this notice: POST {path} on the linewarden API."
        )
        return replace(ticket, idempotency_key=f"{ticket.idempotency_key}-esc-{row['id']}",
                       title=f"Escalation level {row['level']}: {ticket.title}", description=text)

    def _outcome(self, row: Row, state: str, error: str) -> None:
        now = self._clock()
        attempts = int(row["attempts"]) + 1
        wait = int(self._config.retry_wait.total_seconds() * 1000) << min(attempts - 1, 16)
        with self._store.transaction() as tx:
            tx.sql.execute(
                "UPDATE escalation_notifications SET state = ?, last_error = ?, next_attempt_at = ?,"
                " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END WHERE id = ?",
                (state, error[:500], now + wait, state, now, row["id"]),
            )
            if state != "pending":
                action = "ticket.escalation_notified" if state == "sent" else "ticket.escalation_failed"
                obj = ticket_object(row["contract_id"], row["incident_id"])
                details = {"notification": row["id"], "contact": row["contact_id"], "channel": row["channel"],
                           "attempts": attempts, "error": error[:500]}
                append_entry(tx.sql, "collector", self._origin, action, obj, details, now)
        if state != "sent":
            log.warning("escalation notice %s to %s by %s: %s (%s)", row["id"], row["contact_id"], row["channel"],
                        error, state)

