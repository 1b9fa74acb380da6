"""The dispatch outbox: every ticket step is a row, sent to the vendor at least once and recorded exactly once.

A step is requested by inserting a row (a repeated request hits the UNIQUE key and is dropped). The
Dispatcher claims due rows (state in_flight with a lease), calls the contract's sink under a fresh tenacity
AsyncRetrying (attempts AND elapsed time, capped random-exponential waits, a deadline per attempt), then
records the outcome, the ticket and the audit entry in one transaction. Exactly one vendor ticket per
incident and contract comes from how a create is sent: look up by idempotency key first (Jira label,
ServiceNow correlation_id) and create only when nothing is found, carrying the key either way (webhook
receivers and PagerDuty dedupe on it). So a create whose answer was lost to a timeout, or to a crash between
the vendor's answer and our record, is found or deduplicated when it is claimed again. A claim names its
holder (the collector's id and the boot of its process): a collector that starts takes back at once the
claims its own earlier, dead process held, so a create cut off by a crash is sent again as soon as the
collector is back; a claim of another collector is left to its lease (that collector may still be working),
and once the lease has passed any collector claims the step again. Several collectors on one PostgreSQL claim
with `FOR UPDATE SKIP LOCKED` (a row another collector is claiming is passed over, not waited for); an outcome
is recorded only by the claim's current holder.
Steps of one ticket run in request order; a run that fails is retried later with capped backoff, and the row
fails for good after `RetryPolicy.runs` runs or when the vendor rejects it. A vendor's answer the store cannot
record (full, or unreachable) is recorded again with backoff while the claim lasts, so it lands once space
returns rather than when the lease runs out.
Between rounds the dispatcher sleeps until woken (`wake`: a step was requested in this process), until the
next step is due or a lease ends (read from the store), or the safety poll (collector/wakeup.py).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from collector.audit import append_entry, lock_chain
from collector.store.base import Row, Sql, Store
from collector.ticketing.base import Ticket, TicketSink, VendorRef
from collector.wakeup import SAFETY_POLL_S, Wakeup, sleep_s
from linewarden.domain import Severity
from linewarden.errors import StorageFull, StoreUnavailable, TicketError, TicketRejected

log = logging.getLogger(__name__)

Action = Literal["create", "update", "comment", "resolve"]
_ACTIONS: dict[str, Action] = {"create": "create", "update": "update", "comment": "comment", "resolve": "resolve"}
AUDIT_ACTIONS: dict[str, str] = {
    "create": "ticket.raised",
    "update": "ticket.severity_raised",
    "comment": "ticket.commented",
    "resolve": "ticket.resolved",
}
# The step is still this process's claim (a dispatcher that outlived its lease finds it taken over).
_HELD = " WHERE id = ? AND state = 'in_flight' AND claim_boot = ?"
_COLUMNS = (
    "id, incident_id, contract_id, action, dedup, ticket, note, actor, origin, state, attempts, next_attempt_at,"
    " last_error"
)


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one run tries (tenacity inside a run) and how runs are spaced (the outbox between runs)."""

    attempt_timeout_s: float = 15.0
    attempts: int = 4
    run_budget_s: float = 90.0
    wait_multiplier_s: float = 0.5
    wait_max_s: float = 20.0
    runs: int = 12
    backoff_min_ms: int = 30_000
    backoff_max_ms: int = 3_600_000

    @property
    def lease_ms(self) -> int:
        """How long a claim holds: longer than any run can last, so only a dead dispatcher's claims expire."""
        return int((self.run_budget_s + self.attempt_timeout_s + self.wait_max_s) * 1000) + 1000

    def backoff_ms(self, runs_done: int) -> int:
        return min(self.backoff_min_ms << max(runs_done - 1, 0), self.backoff_max_ms)


@dataclass(frozen=True)
class Dispatch:
    id: int
    incident_id: str
    contract_id: str
    action: Action
    dedup: str
    ticket: Ticket
    note: str
    actor: str
    origin: str
    state: str
    attempts: int
    next_attempt_at: int
    last_error: str


@dataclass(frozen=True)
class TicketRecord:
    incident_id: str
    contract_id: str
    sink: str
    ref: VendorRef
    severity: Severity
    state: str
    raised_at: int
    resolved_at: int | None


# Called inside the transaction that records a step the vendor accepted (ticket records, timers ride along).
RecordHook = Callable[[Sql, "Dispatch", VendorRef, int], None]


def request_step(
    sql: Sql, action: Action, dedup: str, ticket: Ticket, note: str, actor: str, origin: str, now: int
) -> bool:
    """Insert one step inside the caller's transaction; False when it was asked for already (or, for a step
    after create, when no create was ever asked for)."""
    key, contract = ticket.idempotency_key, ticket.contract_id
    if action != "create":
        created = sql.query(
            "SELECT 1 AS x FROM ticket_dispatches WHERE incident_id = ? AND contract_id = ? AND action = 'create'",
            (key, contract),
        )
        if not created:
            return False
    lock_chain(sql)  # numbered by max + 1: concurrent collectors take turns
    return bool(
        sql.execute(
            "INSERT INTO ticket_dispatches (id, incident_id, contract_id, action, dedup, ticket, note, actor,"
            " origin, state, attempts, next_attempt_at, created_at, updated_at)"
            " SELECT COALESCE(MAX(id), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ? FROM ticket_dispatches"
            " WHERE TRUE ON CONFLICT (incident_id, contract_id, dedup) DO NOTHING",
            (key, contract, action, dedup, ticket.to_json(), note, actor, origin, now, now, now),
        )
    )


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or (isinstance(exc, TicketError) and not isinstance(exc, TicketRejected))


class Dispatcher:
    """Sends the outbox's ticket steps through each contract's sink (`sinks` maps contract id to sink)."""

    # Waits between attempts to record a vendor's answer while the store is full or unreachable.
    RECORD_RETRY_FIRST_S = 0.5
    RECORD_RETRY_MAX_S = 10.0

    def __init__(
        self,
        store: Store,
        sinks: Mapping[str, TicketSink],
        *,
        clock: Callable[[], int] = wall_clock_ms,
        policy: RetryPolicy = RetryPolicy(),
        actor: str = "collector",
        origin: str | None = None,
        on_recorded: RecordHook | None = None,
        worker: str | None = None,
    ) -> None:
        """`worker` names this collector across restarts (its configured id; one process per id)."""
        self._store = store
        self._sinks = sinks
        self._clock = clock
        self._policy = policy
        self._actor = actor
        self._origin = origin if origin is not None else socket.gethostname()
        self._on_recorded = on_recorded
        self._wake = Wakeup()
        self._worker = worker if worker is not None else self._origin
        self._boot = uuid.uuid4().hex

    def wake(self) -> None:
        """Look for due steps now (a new S1 ticket is not kept waiting); from any thread."""
        self._wake.set()

    # ------------------------------------------------------------ requests

    def request_create(self, ticket: Ticket, actor: str | None = None, origin: str | None = None) -> bool:
        """Ask for the vendor ticket of an incident; False when it was asked for already."""
        return self._request("create", "create", ticket, "", actor, origin)

    def request_update(self, ticket: Ticket, actor: str | None = None, origin: str | None = None) -> bool:
        """Ask to raise the ticket to `ticket.severity` (never lowered: a less severe request is a no-op)."""
        return self._request("update", f"update:{ticket.severity.value}", ticket, "", actor, origin)

    def request_comment(
        self, ticket: Ticket, text: str, dedup: str, actor: str | None = None, origin: str | None = None
    ) -> bool:
        """Ask to comment; `dedup` names the comment (e.g. 'reminder:3') so a repeated request is dropped."""
        return self._request("comment", f"comment:{dedup}", ticket, text, actor, origin)

    def request_resolve(self, ticket: Ticket, note: str, actor: str | None = None, origin: str | None = None) -> bool:
        return self._request("resolve", "resolve", ticket, note, actor, origin)

    def _request(
        self, action: Action, dedup: str, ticket: Ticket, note: str, actor: str | None, origin: str | None
    ) -> bool:
        with self._store.transaction() as tx:
            added = request_step(
                tx.sql, action, dedup, ticket, note, actor or self._actor, origin or self._origin, self._clock()
            )
        if added:
            self.wake()
        return added

    # ------------------------------------------------------------ queries

    def dispatches(self, incident_id: str, contract_id: str) -> list[Dispatch]:
        with self._store.reader() as sql:
            rows = sql.query(
                f"SELECT {_COLUMNS} FROM ticket_dispatches WHERE incident_id = ? AND contract_id = ? ORDER BY id",
                (incident_id, contract_id),
            )
        return [_dispatch(row) for row in rows]

    def ticket(self, incident_id: str, contract_id: str) -> TicketRecord | None:
        with self._store.reader() as sql:
            rows = sql.query(
                "SELECT incident_id, contract_id, sink, vendor_id, vendor_display, vendor_url, severity, state,"
                " raised_at, resolved_at FROM tickets WHERE incident_id = ? AND contract_id = ?",
                (incident_id, contract_id),
            )
        if not rows:
            return None
        r = rows[0]
        ref = VendorRef(r["vendor_id"], r["vendor_display"], r["vendor_url"])
        return TicketRecord(
            r["incident_id"], r["contract_id"], r["sink"], ref, Severity(r["severity"]), r["state"],
            r["raised_at"], r["resolved_at"],
        )

    # ------------------------------------------------------------ running

    def reclaim_abandoned(self) -> int:
        """Make the claims of this worker's earlier boots (a process that died mid-step) due now; return how
        many. Done once when the dispatcher starts running."""
        now = self._clock()
        with self._store.transaction() as tx:
            rows = tx.sql.query(
                f"SELECT {_COLUMNS} FROM ticket_dispatches WHERE state = 'in_flight' AND claim_worker = ?"
                " AND claim_boot <> ?" + tx.sql.for_update(skip_locked=True),
                (self._worker, self._boot),
            )
            for row in map(_dispatch, rows):
                tx.sql.execute(
                    "UPDATE ticket_dispatches SET state = 'pending', next_attempt_at = ?, updated_at = ? WHERE id = ?",
                    (now, now, row.id),
                )
                append_entry(tx.sql, self._actor, self._origin, "ticket.reclaimed", _object(row),
                             {"step": row.action, "attempts": row.attempts, "lease_until": row.next_attempt_at},
                             now)  # fmt: skip
        if rows:
            log.warning("took back %d ticket step(s) claimed by this collector before it stopped", len(rows))
        return len(rows)

    async def run(self, stop: asyncio.Event, poll_s: float = SAFETY_POLL_S) -> None:
        """Process due steps until `stop` is set; a failing database round is logged and tried again. Between
        rounds, sleep until woken, until the next due step or lease end, at most `poll_s` (the safety poll)."""
        try:
            self.reclaim_abandoned()
        except Exception:
            log.exception("could not take back this collector's earlier claims; they wait out their lease")
        while not stop.is_set():
            started = self._clock()
            due: int | None = started
            try:
                busy = await self.run_once()
                if not busy:
                    due = self.next_due()
            except Exception:
                log.exception("ticket dispatch round failed; claimed steps are retried when their lease ends")
                busy = 0
            if not busy:
                await self._wake.wait(sleep_s(started, self._clock(), due, poll_s), stop)

    def next_due(self) -> int | None:
        """When a step can be claimed next: the earliest retry time or lease end among the steps that are not
        waiting behind an earlier step of their ticket (the claim's own order); None when there is none."""
        with self._store.reader() as sql:
            rows = sql.query(
                "SELECT MIN(d.next_attempt_at) AS due FROM ticket_dispatches d"
                " WHERE d.state IN ('pending', 'in_flight')"
                " AND NOT EXISTS (SELECT 1 FROM ticket_dispatches e WHERE e.incident_id = d.incident_id"
                "   AND e.contract_id = d.contract_id AND e.id < d.id AND e.state IN ('pending', 'in_flight'))"
            )
        return None if not rows or rows[0]["due"] is None else int(rows[0]["due"])

    async def run_once(self, limit: int = 16) -> int:
        """Claim up to `limit` due steps (at most one per ticket), send them concurrently; return how many."""
        claimed = self._claim(limit)
        await asyncio.gather(*(self._process(row) for row in claimed))
        return len(claimed)

    def _claim(self, limit: int) -> list[Dispatch]:
        now = self._clock()
        claimed: list[Dispatch] = []
        with self._store.transaction() as tx:
            for _ in range(limit):
                rows = tx.sql.query(
                    f"SELECT {_COLUMNS} FROM ticket_dispatches d"
                    " WHERE d.state IN ('pending', 'in_flight') AND d.next_attempt_at <= ?"
                    " AND NOT EXISTS (SELECT 1 FROM ticket_dispatches e WHERE e.incident_id = d.incident_id"
                    "   AND e.contract_id = d.contract_id AND e.id < d.id AND e.state IN ('pending', 'in_flight'))"
                    " ORDER BY d.next_attempt_at, d.id LIMIT 1" + tx.sql.for_update(skip_locked=True),
                    (now,),
                )
                if not rows:
                    break
                tx.sql.execute(
                    "UPDATE ticket_dispatches SET state = 'in_flight', attempts = attempts + 1,"
                    " next_attempt_at = ?, updated_at = ?, claim_worker = ?, claim_boot = ? WHERE id = ?",
                    (now + self._policy.lease_ms, now, self._worker, self._boot, rows[0]["id"]),
                )
                claimed.append(_dispatch(rows[0]))
        return claimed

    async def _process(self, row: Dispatch) -> None:
        claimed_until = self._clock() + self._policy.lease_ms
        try:
            ref = await self._send(row)
        except TicketRejected as exc:
            self._fail(row, str(exc))
            return
        except Exception as exc:  # TicketError, a timeout, or a sink's bug: the next run may do better
            self._defer(row, f"{type(exc).__name__}: {exc}")
            return
        await self._record_when_writable(row, ref, claimed_until)

    async def _record_when_writable(self, row: Dispatch, ref: VendorRef | None, claimed_until: int) -> None:
        """Record the vendor's answer. While the store is full or away, try again with backoff for as long as the
        claim is ours: left to the lease, the record (and the ticket's raise time) would wait minutes."""
        wait = self.RECORD_RETRY_FIRST_S
        while True:
            try:
                self._record(row, ref)
                return
            except (StorageFull, StoreUnavailable) as exc:
                if self._clock() + int(wait * 1000) >= claimed_until:
                    raise
                log.warning("ticket %s %s: answer not recorded yet (%s); retrying in %.1fs",
                            _object(row), row.action, exc, wait)  # fmt: skip
            await asyncio.sleep(wait)
            wait = min(wait * 2, self.RECORD_RETRY_MAX_S)

    async def _send(self, row: Dispatch) -> VendorRef | None:
        """Call the vendor for one step; None means there was nothing to send."""
        sink = self._sinks.get(row.contract_id)
        if sink is None:
            raise TicketRejected(f"contract {row.contract_id} has no ticket sink configured")
        ticket = row.ticket
        if row.action == "create":
            return await self._retrying(lambda: _find_or_create(sink, ticket))
        record = self.ticket(row.incident_id, row.contract_id)
        if record is None:
            raise TicketRejected("no vendor ticket was raised for this incident")
        ref = record.ref
        if row.action == "update":
            if not ticket.severity.worse_than(record.severity):
                return None
            await self._retrying(lambda: sink.update(ref, ticket))
        elif row.action == "comment":
            await self._retrying(lambda: sink.comment(ref, ticket, row.note))
        else:
            await self._retrying(lambda: sink.resolve(ref, ticket, row.note))
        return ref

    async def _retrying(self, call: Callable[[], Awaitable[VendorRef | None]]) -> VendorRef | None:
        policy = self._policy

        async def attempt() -> VendorRef | None:
            async with asyncio.timeout(policy.attempt_timeout_s):
                return await call()

        # A fresh AsyncRetrying per call: tenacity's retry state must not be shared between concurrent sends.
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.run_budget_s),
            wait=wait_random_exponential(multiplier=policy.wait_multiplier_s, max=policy.wait_max_s),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        return await retrying(attempt)

    # ------------------------------------------------------------ outcomes

    def _record(self, row: Dispatch, ref: VendorRef | None) -> None:
        now = self._clock()
        ticket = row.ticket
        with self._store.transaction() as tx:
            conn = tx.sql
            if not conn.execute(
                "UPDATE ticket_dispatches SET state = 'done', last_error = '', updated_at = ?" + _HELD,
                (now, row.id, self._boot),
            ):
                log.warning("ticket %s %s: claim taken over after its lease; its new holder records it",
                            _object(row), row.action)
                return
            if ref is None:
                return  # a severity request that would not raise the ticket: nothing happened at the vendor
            where = (row.incident_id, row.contract_id)
            if row.action == "create":
                conn.execute(
                    "INSERT INTO tickets (incident_id, contract_id, vendor, sink, vendor_id, vendor_display,"
                    " vendor_url, severity, state, opened_at, raised_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?)"
                    " ON CONFLICT (incident_id, contract_id) DO NOTHING",
                    (
                        *where,
                        ticket.vendor,
                        self._sinks[row.contract_id].kind,
                        ref.id,
                        ref.display,
                        ref.url,
                        ticket.severity.value,
                        ticket.opened_at,
                        now,
                        now,
                    ),
                )
            elif row.action == "update":
                conn.execute(
                    "UPDATE tickets SET severity = ?, updated_at = ? WHERE incident_id = ? AND contract_id = ?",
                    (ticket.severity.value, now, *where),
                )
            elif row.action == "resolve":
                conn.execute(
                    "UPDATE tickets SET state = 'resolved', resolved_at = ?, updated_at = ?"
                    " WHERE incident_id = ? AND contract_id = ?",
                    (now, now, *where),
                )
            details = {
                "vendor": ticket.vendor,
                "vendor_ref": ref.display,
                "vendor_id": ref.id,
                "severity": ticket.severity.value,
                "attempts": row.attempts + 1,
                "note": row.note,
            }
            append_entry(conn, row.actor, row.origin, AUDIT_ACTIONS[row.action], _object(row), details, now)
            if self._on_recorded is not None:
                self._on_recorded(conn, row, ref, now)

    def _defer(self, row: Dispatch, error: str) -> None:
        runs = row.attempts + 1
        if runs >= self._policy.runs:
            self._fail(row, f"gave up after {runs} runs: {error}")
            return
        now = self._clock()
        retry_at = now + self._policy.backoff_ms(runs)
        log.warning("ticket %s %s: %s; next try at %d", _object(row), row.action, error, retry_at)
        with self._store.transaction() as tx:
            conn = tx.sql
            if not conn.execute(
                "UPDATE ticket_dispatches SET state = 'pending', next_attempt_at = ?, last_error = ?, updated_at = ?"
                + _HELD,
                (retry_at, error, now, row.id, self._boot),
            ):
                return  # taken over after the lease: the new holder decides
            details = {"step": row.action, "error": error, "runs": runs, "next_attempt_at": retry_at}
            append_entry(conn, self._actor, self._origin, "ticket.deferred", _object(row), details, now)

    def _fail(self, row: Dispatch, error: str) -> None:
        now = self._clock()
        log.error("ticket %s %s failed: %s", _object(row), row.action, error)
        with self._store.transaction() as tx:
            conn = tx.sql
            # Later steps of a ticket that was never raised cannot succeed either.
            scope = "incident_id = ? AND contract_id = ? AND id >= ?" if row.action == "create" else "id = ?"
            params = (row.incident_id, row.contract_id, row.id) if row.action == "create" else (row.id,)
            if not conn.query("SELECT id FROM ticket_dispatches" + _HELD, (row.id, self._boot)):
                return  # taken over after the lease: the new holder decides
            conn.execute(
                "UPDATE ticket_dispatches SET state = 'failed', last_error = ?, updated_at = ?"
                f" WHERE state IN ('pending', 'in_flight') AND {scope}",
                (error, now, *params),
            )
            details = {"step": row.action, "error": error, "runs": row.attempts + 1}
            append_entry(conn, self._actor, self._origin, "ticket.failed", _object(row), details, now)


async def _find_or_create(sink: TicketSink, ticket: Ticket) -> VendorRef:
    found = await sink.find(ticket.idempotency_key)
    return found if found is not None else await sink.create(ticket)


def _object(row: Dispatch) -> str:
    return f"ticket/{row.contract_id}/{row.incident_id}"


def _dispatch(row: Row) -> Dispatch:
    return Dispatch(
        id=int(row["id"]),
        incident_id=str(row["incident_id"]),
        contract_id=str(row["contract_id"]),
        action=_ACTIONS[str(row["action"])],
        dedup=str(row["dedup"]),
        ticket=Ticket.from_json(str(row["ticket"])),
        note=str(row["note"]),
        actor=str(row["actor"]),
        origin=str(row["origin"]),
        state=str(row["state"]),
        attempts=int(row["attempts"]),
        next_attempt_at=int(row["next_attempt_at"]),
        last_error=str(row["last_error"]),
    )
