"""A vendor ticket's life after the dispatcher raised it: raised → acknowledged → triaged → resolution claimed
→ verified against measured state → closed (or reopened, the clock still running), with pauses, accepted
workarounds and the RCA on the side.

Every step is one store transaction holding the ticket's change, its audit entry, its `ticket_records` row
(what the SLA report reads: ticket_raised, ticket_acknowledged, ticket_triaged with details.severity,
ticket_paused, ticket_resumed, resolution_claimed, workaround_accepted, rca_received) and any vendor comment
it causes (through the dispatch outbox).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector.audit import append_entry
from collector.store.base import Row, Sql, Store, Writer
from collector.ticketing import timers
from collector.ticketing.base import VendorRef
from collector.ticketing.dispatch import Dispatch, request_step
from collector.ticketing.plant_it import PLANT_IT
from linewarden.book import ContractBook
from linewarden.domain import Severity, State
from linewarden.errors import TicketNotFound, TicketStateError

log = logging.getLogger(__name__)

RAISED, ACKNOWLEDGED, TRIAGED, CLAIMED, REOPENED, CLOSED = (
    "raised", "acknowledged", "triaged", "resolution_claimed", "reopened", "closed"
)
_STILL_BROKEN = (State.DOWN, State.DEGRADED)
_STATE_RANK = {State.DOWN: 0, State.DEGRADED: 1, State.UNKNOWN: 2, State.UP: 3}


@dataclass(frozen=True)
class TicketView:
    incident_id: str
    contract_id: str
    vendor: str
    sink: str
    vendor_ref: str
    vendor_url: str | None
    severity: str
    vendor_severity: str | None
    phase: str
    paused: bool
    opened_at: int
    raised_at: int
    acknowledged_at: int | None
    closed_at: int | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _view(r: Row) -> TicketView:
    return TicketView(
        r["incident_id"], r["contract_id"], r["vendor"], r["sink"], r["vendor_display"], r["vendor_url"],
        r["severity"], r["vendor_severity"], r["phase"], r["paused_since"] is not None, int(r["opened_at"]),
        int(r["raised_at"]), r["acknowledged_at"], r["closed_at"],
    )


def list_tickets(store: Store, vendor: str | None = None) -> list[TicketView]:
    """Vendor tickets (plant-IT notices excluded), newest first; only `vendor`'s when given."""
    query = "SELECT * FROM tickets WHERE sink <> ?"
    params: list[Any] = [PLANT_IT]
    if vendor is not None:
        query += " AND vendor = ?"
        params.append(vendor)
    with store.reader() as sql:
        rows = sql.query(query + " ORDER BY raised_at DESC, incident_id", params)
    return [_view(r) for r in rows]


def get_ticket(store: Store, contract_id: str, incident_id: str) -> TicketView | None:
    """One vendor ticket by its contract and incident."""
    with store.reader() as sql:
        rows = sql.query(
            "SELECT * FROM tickets WHERE contract_id = ? AND incident_id = ? AND sink <> ?",
            (contract_id, incident_id, PLANT_IT),
        )
    return _view(rows[0]) if rows else None


def measured_state(sql: Sql, site: str, asset: str) -> State | None:
    """The asset's state now at its own site, as its targets' latest state changes say (worst target wins); None
    if unknown. An asset of the same name at another site is another asset."""
    rows = sql.query(
        "SELECT s.to_state FROM state_changes s WHERE s.site = ? AND s.asset = ? AND s.at = (SELECT MAX(l.at)"
        " FROM state_changes l WHERE l.site = s.site AND l.agent = s.agent AND l.target = s.target)",
        (site, asset),
    )
    states = [State(r["to_state"]) for r in rows]
    return min(states, key=lambda s: _STATE_RANK[s]) if states else None


class Lifecycle:
    """`on_change` is called (from the caller's thread) after each change that may give the ticketing loops work:
    a vendor step requested, timers scheduled, moved or made due again (the collector wakes its loops)."""

    def __init__(
        self, store: Store, book: ContractBook, clock: Callable[[], int], origin: str,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._book = book
        self._clock = clock
        self._origin = origin
        self._on_change = on_change

    @property
    def book(self) -> ContractBook:
        return self._book

    # ------------------------------------------------------------ from the dispatcher

    def on_recorded(self, sql: Sql, row: Dispatch, ref: VendorRef, now: int) -> None:
        """Inside the dispatcher's record transaction: a vendor accepted a create or a severity raise."""
        contract = self._book.contracts.get(row.contract_id)
        if contract is None or row.action not in ("create", "update"):
            return
        calendar = timers.coverage(self._book, contract)
        severity = row.ticket.severity
        if row.action == "create":
            Writer(sql).add_ticket_record(
                row.incident_id, "ticket_raised", now, row.actor,
                {"contract": row.contract_id, "vendor_ref": ref.display, "severity": severity.value}, "collector",
            )
            timers.schedule_ticket(sql, contract, calendar, row.incident_id, severity, now)
            # The restoration may have been recorded while the create was on its way (a slow vendor, a crash).
            self.apply_restoration(sql, row.incident_id, row.contract_id, now)
        else:
            raised = sql.query(
                "SELECT raised_at FROM tickets WHERE incident_id = ? AND contract_id = ?",
                (row.incident_id, row.contract_id),
            )
            if raised:
                timers.schedule_escalations(
                    sql, contract, calendar, row.incident_id, severity, int(raised[0]["raised_at"])
                )
        self._on_change()

    # ------------------------------------------------------------ from the router

    def apply_restoration(self, sql: Sql, incident: str, contract_id: str, now: int) -> bool:
        """Handle the incident's recorded restoration for this contract's ticket once, whichever of the two was
        recorded first: True when it was handled now. Needs the vendor ticket and the edge's resolution."""
        rows = sql.query(
            "SELECT i.resolved_at FROM ticket_routes r JOIN incidents i ON i.id = r.incident_id"
            " JOIN tickets t ON t.incident_id = r.incident_id AND t.contract_id = r.contract_id"
            " WHERE r.incident_id = ? AND r.contract_id = ? AND r.decision = 'vendor' AND r.restored_at IS NULL"
            " AND i.resolved_at IS NOT NULL",
            (incident, contract_id),
        )
        if not rows:
            return False
        restored_at = int(rows[0]["resolved_at"])
        claimed = sql.execute(
            "UPDATE ticket_routes SET restored_at = ? WHERE incident_id = ? AND contract_id = ?"
            " AND restored_at IS NULL",
            (restored_at, incident, contract_id),
        )
        if claimed:
            self.on_restored(sql, incident, contract_id, restored_at, now)
        return bool(claimed)

    def on_restored(self, sql: Sql, incident: str, contract_id: str, restored_at: int, now: int) -> None:
        """The agent measured the service restored: resolution escalations are moot, the RCA clock starts, and
        a ticket whose resolution claim had been refused closes."""
        contract = self._book.contracts.get(contract_id)
        rows = sql.query("SELECT * FROM tickets WHERE incident_id = ? AND contract_id = ?", (incident, contract_id))
        if contract is None or not rows:
            return
        timers.cancel(sql, incident, contract_id, (timers.RESOLUTION,), now)
        severity = Severity(rows[0]["severity"])
        timers.schedule_rca(sql, contract, timers.coverage(self._book, contract), incident, severity, restored_at)
        self._comment(sql, incident, contract_id, "restored", "Service measured restored by linewarden.", now)
        append_entry(sql, "collector", self._origin, "ticket.restored_measured", f"ticket/{contract_id}/{incident}",
                     {"restored_at": restored_at}, now)
        if rows[0]["phase"] == REOPENED:
            self._close(sql, incident, contract_id, "collector", self._origin, now, "restored after a refused claim")
        self._on_change()

    # ------------------------------------------------------------ vendor steps

    def acknowledge(
        self, incident: str, contract_id: str, actor: str, origin: str, at: int | None = None
    ) -> TicketView:
        """`at`: when the vendor's own tool says it responded (read back), bounded to [raised, now] so a vendor
        can neither back-date its response before the ticket existed nor date it in the future."""

        def step(tx: Writer, row: Row, now: int) -> None:
            if row["acknowledged_at"] is not None:
                return
            when = now if at is None else min(max(at, int(row["raised_at"])), now)
            tx.sql.execute(
                "UPDATE tickets SET acknowledged_at = ?, phase = CASE WHEN phase = ? THEN ? ELSE phase END,"
                " updated_at = ? WHERE incident_id = ? AND contract_id = ?",
                (when, RAISED, ACKNOWLEDGED, now, incident, contract_id),
            )
            timers.cancel(tx.sql, incident, contract_id, (timers.RESPONSE,), now)
            details = {} if at is None else {"vendor_time": at, "now": now}
            self._record(tx, row, "ticket_acknowledged", "ticket.acknowledged", details, actor, origin, now, when)

        return self._step(incident, contract_id, step)

    def triage(self, incident: str, contract_id: str, severity: Severity, actor: str, origin: str) -> TicketView:
        def step(tx: Writer, row: Row, now: int) -> None:
            tx.sql.execute(
                "UPDATE tickets SET vendor_severity = ?, phase = CASE WHEN phase IN (?, ?) THEN ? ELSE phase END,"
                " acknowledged_at = COALESCE(acknowledged_at, ?), updated_at = ?"
                " WHERE incident_id = ? AND contract_id = ?",
                (severity.value, RAISED, ACKNOWLEDGED, TRIAGED, now, now, incident, contract_id),
            )
            if row["acknowledged_at"] is None:  # triage answers the ticket: it is the acknowledgement too
                timers.cancel(tx.sql, incident, contract_id, (timers.RESPONSE,), now)
                self._record(tx, row, "ticket_acknowledged", "ticket.acknowledged", {}, actor, origin, now)
            details = {"severity": severity.value, "edge_severity": row["severity"],
                       "differs": severity.value != row["severity"]}
            self._record(tx, row, "ticket_triaged", "ticket.triaged", details, actor, origin, now)

        return self._step(incident, contract_id, step)

    def claim_resolution(self, incident: str, contract_id: str, note: str, actor: str, origin: str) -> TicketView:
        """Record the claim and verify it: still DOWN or DEGRADED → reopened (the clock keeps running);
        otherwise closed and the vendor ticket resolved."""

        def step(tx: Writer, row: Row, now: int) -> None:
            self._record(tx, row, "resolution_claimed", "ticket.resolution_claimed", {"note": note}, actor, origin,
                         now)
            state = self._asset_state(tx.sql, incident)
            if state in _STILL_BROKEN:
                tx.sql.execute(
                    "UPDATE tickets SET phase = ?, updated_at = ? WHERE incident_id = ? AND contract_id = ?",
                    (REOPENED, now, incident, contract_id),
                )
                append_entry(tx.sql, "collector", self._origin, "ticket.reopened", _obj(contract_id, incident),
                             {"measured_state": state.value if state else None}, now)
                text = f"Resolution claim refused: linewarden measures the asset {state.value if state else ''} now."
                self._comment(tx.sql, incident, contract_id, f"reopened:{now}", text, now)
                log.warning("ticket %s/%s reopened: asset still %s", contract_id, incident, state)
            else:
                self._close(tx.sql, incident, contract_id, actor, origin, now, note)

        return self._step(incident, contract_id, step)

    def receive_rca(
        self, incident: str, contract_id: str, link: str | None, document: dict[str, Any] | None, actor: str,
        origin: str,
    ) -> TicketView:
        def step(tx: Writer, row: Row, now: int) -> None:
            details = {"link": link, "document": document}
            timers.cancel(tx.sql, incident, contract_id, ("rca",), now)
            self._record(tx, row, "rca_received", "ticket.rca_received", details, actor, origin, now)

        return self._step(incident, contract_id, step, closed_ok=True)

    # ------------------------------------------------------------ plant steps

    def pause(self, incident: str, contract_id: str, reason: str, actor: str, origin: str) -> TicketView:
        contract = self._book.contracts.get(contract_id)
        if contract is not None and not contract.support.pause_allowed:
            raise TicketStateError(f"contract {contract_id} does not allow pausing the clock")

        def step(tx: Writer, row: Row, now: int) -> None:
            if row["paused_since"] is not None:
                return
            tx.sql.execute(
                "UPDATE tickets SET paused_since = ?, updated_at = ? WHERE incident_id = ? AND contract_id = ?",
                (now, now, incident, contract_id),
            )
            self._record(tx, row, "ticket_paused", "ticket.paused", {"reason": reason}, actor, origin, now)

        return self._step(incident, contract_id, step)

    def resume(self, incident: str, contract_id: str, actor: str, origin: str) -> TicketView:
        def step(tx: Writer, row: Row, now: int) -> None:
            paused = row["paused_since"]
            if paused is None:
                return
            tx.sql.execute(
                "UPDATE tickets SET paused_since = NULL, updated_at = ? WHERE incident_id = ? AND contract_id = ?",
                (now, incident, contract_id),
            )
            contract = self._book.contracts.get(contract_id)
            if contract is not None:
                calendar = timers.coverage(self._book, contract)
                timers.shift_after_pause(tx.sql, calendar, incident, contract_id, int(paused), now)
            self._record(tx, row, "ticket_resumed", "ticket.resumed", {"paused_at": paused}, actor, origin, now)

        return self._step(incident, contract_id, step)

    def accept_workaround(self, incident: str, contract_id: str, note: str, actor: str, origin: str) -> TicketView:
        def step(tx: Writer, row: Row, now: int) -> None:
            timers.cancel(tx.sql, incident, contract_id, (timers.RESOLUTION,), now)
            self._record(tx, row, "workaround_accepted", "ticket.workaround_accepted", {"note": note}, actor,
                         origin, now)

        return self._step(incident, contract_id, step)

    # ------------------------------------------------------------ helpers

    def _step(
        self, incident: str, contract_id: str, step: Callable[[Writer, Row, int], None], closed_ok: bool = False
    ) -> TicketView:
        now = self._clock()
        with self._store.transaction() as tx:
            rows = tx.sql.query(
                "SELECT * FROM tickets WHERE incident_id = ? AND contract_id = ? AND sink <> ?",
                (incident, contract_id, PLANT_IT),
            )
            if not rows:
                raise TicketNotFound(f"no ticket for incident {incident} under contract {contract_id}")
            if rows[0]["phase"] == CLOSED and not closed_ok:
                raise TicketStateError(f"ticket {contract_id}/{incident} is closed")
            step(tx, rows[0], now)
            after = tx.sql.query(
                "SELECT * FROM tickets WHERE incident_id = ? AND contract_id = ?", (incident, contract_id)
            )
        self._on_change()
        return _view(after[0])

    def _record(
        self, tx: Writer, row: Row, kind: str, action: str, details: dict[str, Any], actor: str, origin: str,
        now: int, record_at: int | None = None,
    ) -> None:
        """`record_at`: when the step happened, if not now (a vendor's read-back time); the audit entry is now."""
        incident, contract_id = row["incident_id"], row["contract_id"]
        at = now if record_at is None else record_at
        tx.add_ticket_record(incident, kind, at, actor, {"contract": contract_id, **details}, "api")
        append_entry(tx.sql, actor, origin, action, _obj(contract_id, incident), details, now)

    def _comment(self, sql: Sql, incident: str, contract_id: str, dedup: str, text: str, now: int) -> None:
        ticket = timers.current_ticket(sql, incident, contract_id)
        if ticket is not None:
            request_step(sql, "comment", f"comment:{dedup}", ticket, text, "collector", self._origin, now)

    def _close(self, sql: Sql, incident: str, contract_id: str, actor: str, origin: str, now: int, note: str) -> None:
        sql.execute(
            "UPDATE tickets SET phase = ?, closed_at = ?, updated_at = ? WHERE incident_id = ? AND contract_id = ?",
            (CLOSED, now, now, incident, contract_id),
        )
        timers.cancel(sql, incident, contract_id, ("escalation", "reminder"), now)
        append_entry(sql, actor, origin, "ticket.closed", _obj(contract_id, incident), {"note": note}, now)
        ticket = timers.current_ticket(sql, incident, contract_id)
        if ticket is not None:
            request_step(sql, "resolve", "resolve", ticket, note or "Closed: verified restored.", actor, origin, now)

    @staticmethod
    def _asset_state(sql: Sql, incident: str) -> State | None:
        rows = sql.query("SELECT site, asset, resolved_at FROM incidents WHERE id = ?", (incident,))
        if not rows or rows[0]["asset"] is None:
            return None
        measured = measured_state(sql, rows[0]["site"], rows[0]["asset"])
        if measured is None and rows[0]["resolved_at"] is None:
            return State.DOWN  # no state change seen, but the incident is still open at the edge
        return measured


def _obj(contract_id: str, incident: str) -> str:
    return f"ticket/{contract_id}/{incident}"
