"""Stored ticket timers: escalation levels, reminders and the RCA deadline. They live in `ticket_timers`, not in
memory, so they survive a restart; `fire` marks a timer fired in the same transaction as its audit entry and
its vendor comment, so each fires once.

When a level fires (docs/figures.md, contract `[[escalation]]`):
- `response_target`, `resolution_target` and `N%` (of the response target) count open time of the support
  tier's coverage calendar from the moment the vendor was notified (a business-hours tier's clock stops over
  nights, weekends and holidays); a plain duration ('2h') counts wall-clock time.
- Levels on the response clock become moot once the vendor acknowledges; the others once the ticket is
  closed, a workaround is accepted or the service is measured restored (a level found due after the
  recorded restoration is cancelled, not fired, even if the restoration has not been handled yet).
- Contacts: `notify` when the level fires inside the coverage calendar, `notify_outside_coverage` (if
  given) when it fires outside it (nights, holidays).
Reminders fire every `reminders.every` (wall clock) while the ticket is not closed. The RCA deadline runs
from the measured restoration (linewarden/sla/rca.py) for the severities `rca.severities` lists.
While a ticket is paused nothing fires; on resume the pending deadlines move by the paused time.
The timer loop sleeps until the earliest pending timer is due, or until woken (a timer or a ticket state was
written in this process), at most the safety poll (collector/wakeup.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector.audit import append_entry, canonical_json, lock_chain
from collector.store.base import Row, Sql, Store
from collector.ticketing.base import Ticket
from collector.ticketing.dispatch import request_step
from collector.wakeup import SAFETY_POLL_S, Wakeup, sleep_s
from linewarden.book import ContractBook
from linewarden.calendar import ALWAYS_ID, Calendar
from linewarden.config.contract import BusinessDays, ContractConfig, EscalationLevel
from linewarden.domain import Severity
from linewarden.sla.coverage import CoverageCalendar
from linewarden.timeutil import parse_duration

log = logging.getLogger(__name__)

RESPONSE, RESOLUTION, NONE = "response", "resolution", "none"


@dataclass(frozen=True)
class Timer:
    id: int
    incident_id: str
    contract_id: str
    name: str
    kind: str
    clock: str
    due_at: int
    details: dict[str, Any]


def coverage(book: ContractBook, contract: ContractConfig) -> CoverageCalendar:
    """The support tier's coverage calendar ('24x7' unless the contract names one)."""
    name = contract.support.coverage
    found = book.calendars.get(name)
    if found is not None:
        return found
    if name != ALWAYS_ID:
        log.warning("contract %s: no calendar %r, counting 24x7", contract.contract.id, name)
    return Calendar.always(contract.contract.timezone)


def _ms(text_or_delta: Any) -> int:
    return int(text_or_delta.total_seconds() * 1000)


def escalation_deadline(
    level: EscalationLevel, severity: Severity, contract: ContractConfig, calendar: CoverageCalendar, raised_at: int
) -> tuple[int, str] | None:
    """(due_at, clock) of one level for a ticket raised at `raised_at`; None when the level does not apply."""
    if severity not in level.severities:
        return None
    target = contract.support.targets.for_severity(severity)
    after = level.after.strip()
    if after in ("response_target", "resolution_target") or after.endswith("%"):
        if target is None:
            return None
        if after == "resolution_target":
            return calendar.add_open_time(raised_at, _ms(target.resolution)), RESOLUTION
        fraction = 1.0 if after == "response_target" else float(after[:-1]) / 100
        return calendar.add_open_time(raised_at, int(_ms(target.response) * fraction)), RESPONSE
    return raised_at + _ms(parse_duration(after)), RESOLUTION


def _insert(sql: Sql, incident: str, contract: str, name: str, kind: str, clock: str, due: int, details: Any) -> None:
    lock_chain(sql)  # numbered by max + 1: concurrent collectors take turns
    sql.execute(
        "INSERT INTO ticket_timers (id, incident_id, contract_id, name, kind, clock, due_at, details)"
        " SELECT COALESCE(MAX(id), 0) + 1, ?, ?, ?, ?, ?, ?, ? FROM ticket_timers WHERE TRUE"
        " ON CONFLICT (incident_id, contract_id, name) DO NOTHING",
        (incident, contract, name, kind, clock, due, canonical_json(details)),
    )


def schedule_escalations(
    sql: Sql, contract: ContractConfig, calendar: CoverageCalendar, incident: str, severity: Severity, raised_at: int
) -> None:
    """The escalation levels of `severity` (a raised severity schedules its own; the old ones are cancelled)."""
    cid = contract.contract.id
    sql.execute(
        "UPDATE ticket_timers SET cancelled_at = ? WHERE incident_id = ? AND contract_id = ? AND kind = 'escalation'"
        " AND fired_at IS NULL AND cancelled_at IS NULL AND name NOT LIKE ?",
        (raised_at, incident, cid, f"escalation:{severity.value}:" + "%"),
    )
    for index, level in enumerate(contract.escalation):
        found = escalation_deadline(level, severity, contract, calendar, raised_at)
        if found is None:
            continue
        due, clock = found
        details = {
            "level": index + 1,
            "after": level.after,
            "severity": severity.value,
            "notify": level.notify,
            "notify_outside_coverage": level.notify_outside_coverage,
        }
        _insert(sql, incident, cid, f"escalation:{severity.value}:{index + 1}", "escalation", clock, due, details)


def schedule_ticket(
    sql: Sql, contract: ContractConfig, calendar: CoverageCalendar, incident: str, severity: Severity, raised_at: int
) -> None:
    """Every timer of a newly raised ticket: escalation levels and the first reminder."""
    schedule_escalations(sql, contract, calendar, incident, severity, raised_at)
    every = _ms(contract.reminders.every)
    _insert(sql, incident, contract.contract.id, "reminder:1", "reminder", NONE, raised_at + every, {"n": 1})


def schedule_rca(
    sql: Sql, contract: ContractConfig, calendar: CoverageCalendar, incident: str, severity: Severity, restored: int
) -> None:
    if severity not in contract.rca.severities:
        return
    due_rule = contract.rca.due
    if isinstance(due_rule, BusinessDays):
        due = calendar.add_business_days(restored, due_rule.days)
    else:
        due = restored + _ms(due_rule)
    _insert(sql, incident, contract.contract.id, "rca", "rca", NONE, due, {"restored_at": restored})


def cancel(sql: Sql, incident: str, contract: str, kinds_or_clocks: tuple[str, ...], now: int) -> int:
    """Cancel the pending timers whose kind or clock is listed; return how many."""
    marks = ", ".join("?" for _ in kinds_or_clocks)
    return sql.execute(
        "UPDATE ticket_timers SET cancelled_at = ? WHERE incident_id = ? AND contract_id = ? AND fired_at IS NULL"
        f" AND cancelled_at IS NULL AND (kind IN ({marks}) OR clock IN ({marks}))",
        (now, incident, contract, *kinds_or_clocks, *kinds_or_clocks),
    )


def shift_after_pause(
    sql: Sql, calendar: CoverageCalendar, incident: str, contract: str, paused_at: int, resumed_at: int
) -> None:
    """Move pending deadlines by the paused time: open time for calendar-counted ones, wall time for the rest."""
    wall = resumed_at - paused_at
    open_time = calendar.open_ms(paused_at, resumed_at)
    rows = sql.query(
        "SELECT id, kind, details, due_at FROM ticket_timers WHERE incident_id = ? AND contract_id = ?"
        " AND fired_at IS NULL AND cancelled_at IS NULL",
        (incident, contract),
    )
    for r in rows:
        details = json.loads(r["details"])
        on_calendar = r["kind"] == "escalation" and (
            str(details.get("after", "")).endswith(("_target", "%"))
        )
        due = calendar.add_open_time(int(r["due_at"]), open_time) if on_calendar else int(r["due_at"]) + wall
        sql.execute("UPDATE ticket_timers SET due_at = ? WHERE id = ?", (due, r["id"]))


def _timer(r: Row) -> Timer:
    return Timer(
        int(r["id"]), r["incident_id"], r["contract_id"], r["name"], r["kind"], r["clock"], int(r["due_at"]),
        json.loads(r["details"]),
    )


def current_ticket(sql: Sql, incident: str, contract: str) -> Ticket | None:
    """The ticket as last sent to the vendor (its latest step's copy)."""
    rows = sql.query(
        "SELECT ticket FROM ticket_dispatches WHERE incident_id = ? AND contract_id = ? ORDER BY id DESC LIMIT 1",
        (incident, contract),
    )
    return Ticket.from_json(rows[0]["ticket"]) if rows else None


def _restored_by(sql: Sql, incident: str, at: int) -> bool:
    """Whether the edge recorded the incident resolved at or before `at`."""
    rows = sql.query("SELECT resolved_at FROM incidents WHERE id = ?", (incident,))
    return bool(rows) and rows[0]["resolved_at"] is not None and int(rows[0]["resolved_at"]) <= at


class Timers:
    """Selects due timers and fires them; `run` is the collector's timer loop."""

    def __init__(
        self,
        store: Store,
        book: ContractBook,
        clock: Callable[[], int],
        origin: str,
        on_fired: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._book = book
        self._clock = clock
        self._origin = origin
        self._on_fired = on_fired
        self._wake = Wakeup()

    def due(self, now_ms: int) -> list[Timer]:
        """Pending timers due at `now_ms`, of tickets not paused, earliest first."""
        with self._store.reader() as sql:
            rows = sql.query(
                "SELECT t.* FROM ticket_timers t JOIN tickets k ON k.incident_id = t.incident_id"
                " AND k.contract_id = t.contract_id WHERE t.fired_at IS NULL AND t.cancelled_at IS NULL"
                " AND t.due_at <= ? AND k.paused_since IS NULL ORDER BY t.due_at, t.id",
                (now_ms,),
            )
        return [_timer(r) for r in rows]

    def fire(self, timer: Timer, now_ms: int) -> bool:
        """Fire one timer: audit entry, vendor comment and (for a reminder) the next reminder, all in one
        transaction with marking it fired. False when it had fired or been cancelled already."""
        contract = self._book.contracts.get(timer.contract_id)
        with self._store.transaction() as tx:
            sql = tx.sql
            # Claimed: a timer another collector is firing is left to it (PostgreSQL; SQLite has one writer).
            if not sql.query(
                "SELECT id FROM ticket_timers WHERE id = ? AND fired_at IS NULL AND cancelled_at IS NULL"
                + sql.for_update(skip_locked=True),
                (timer.id,),
            ):
                return False
            # Measured restored before the level was due, its handling not yet run: moot, cancelled, not fired.
            moot = timer.clock == RESOLUTION and _restored_by(sql, timer.incident_id, timer.due_at)
            claimed = sql.execute(
                f"UPDATE ticket_timers SET {'cancelled_at' if moot else 'fired_at'} = ? WHERE id = ?"
                " AND fired_at IS NULL AND cancelled_at IS NULL",
                (now_ms, timer.id),
            )
            if not claimed or moot:
                return False
            ticket = current_ticket(sql, timer.incident_id, timer.contract_id)
            details: dict[str, Any] = {**timer.details, "due_at": timer.due_at}
            if timer.kind == "escalation":
                inside = contract is None or coverage(self._book, contract).is_open(timer.due_at)
                contacts = timer.details["notify"]
                if not inside and timer.details.get("notify_outside_coverage"):
                    contacts = timer.details["notify_outside_coverage"]
                details["contacts"] = contacts
                details["inside_coverage"] = inside
                action = "ticket.escalated"
                text = (
                    f"Escalation level {timer.details['level']} ({timer.details['after']} passed):"
                    f" notifying {', '.join(contacts)}."
                )
            elif timer.kind == "reminder":
                action = "ticket.reminder"
                n = int(timer.details["n"])
                text = f"Reminder {n}: this ticket is still open."
                if contract is not None:
                    every = _ms(contract.reminders.every)
                    _insert(sql, timer.incident_id, timer.contract_id, f"reminder:{n + 1}", "reminder", NONE,
                            timer.due_at + every, {"n": n + 1})
            else:
                action = "rca.overdue"
                text = "The root-cause report is overdue."
            append_entry(sql, "collector", self._origin, action, f"ticket/{timer.contract_id}/{timer.incident_id}",
                         details, now_ms)
            if ticket is not None:
                request_step(sql, "comment", f"comment:{timer.name}", ticket, text, "collector", self._origin,
                             now_ms)
        log.info("ticket %s/%s: %s", timer.contract_id, timer.incident_id, text)
        self._on_fired()
        return True

    def run_once(self) -> int:
        now = self._clock()
        return sum(self.fire(t, now) for t in self.due(now))

    def next_due(self) -> int | None:
        """When the next pending timer of a ticket not paused is due; None when there is none."""
        with self._store.reader() as sql:
            rows = sql.query(
                "SELECT MIN(t.due_at) AS due FROM ticket_timers t JOIN tickets k ON k.incident_id = t.incident_id"
                " AND k.contract_id = t.contract_id WHERE t.fired_at IS NULL AND t.cancelled_at IS NULL"
                " AND k.paused_since IS NULL"
            )
        return None if not rows or rows[0]["due"] is None else int(rows[0]["due"])

    def wake(self) -> None:
        """A timer or a ticket's pause was written in this process: look at the timers now; from any thread."""
        self._wake.set()

    async def run(self, stop: asyncio.Event, poll_s: float = SAFETY_POLL_S) -> None:
        """Fire due timers until `stop` is set; between rounds, sleep until woken or the next timer is due, at
        most `poll_s` (the safety poll)."""
        while not stop.is_set():
            started = self._clock()
            due: int | None = started
            try:
                self.run_once()
                due = self.next_due()
            except Exception:
                log.exception("timer round failed; due timers are tried again next round")
            await self._wake.wait(sleep_s(started, self._clock(), due, poll_s), stop)
