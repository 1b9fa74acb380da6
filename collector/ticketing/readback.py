"""Read back the tickets linewarden raised in a vendor's own tool and feed what they say into the lifecycle.

Each contract whose Jira or ServiceNow sink has `[ticketing.readback]` gets a round every `every`: the reader
(jira_readback.py, servicenow_readback.py) lists the vendor's tickets updated since the contract's cursor,
oldest update first, page by page within the request budget. For each ticket:
- it must be a ticket of this contract (matched by the vendor's id, and by the incident id it carries when it
  carries one); any other is refused and counted in `ticket_readback_refusals` (unknown ticket, another
  contract's, a mismatched incident, an entry that does not parse), never applied;
- its status, assignee and comments are stored beside the ticket (`tickets.vendor_*`, `ticket_vendor_comments`);
- the vendor's first response (a status change, an assignee, a comment by someone other than linewarden's
  integration user) acknowledges the ticket at the vendor's time, bounded to [raised, now];
- a resolution the vendor has not claimed before is a resolution claim, verified against measured state like
  one made in the console or API (still DOWN/DEGRADED: reopened, the vendor told).
The cursor moves to the newest update read (never past now), so a round cut short by the budget, a 429 or
`max_pages` goes on from there. Vendor times only ever order the reading; stored times are bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from collector.audit import append_entry
from collector.store.base import Sql, Store
from collector.ticketing.lifecycle import CLOSED, Lifecycle
from collector.wakeup import SAFETY_POLL_S, sleep_s
from linewarden.config.contract import Readback
from linewarden.errors import LinewardenError, TicketError

log = logging.getLogger(__name__)

TEXT_MAX = 200
COMMENT_MAX = 4000
COMMENTS_PER_TICKET = 200


@dataclass(frozen=True)
class VendorComment:
    id: str
    author: str
    ours: bool
    body: str
    created_at: int


@dataclass(frozen=True)
class VendorTicket:
    """One ticket as the vendor's tool shows it; times are the vendor's (ms), not yet bounded."""

    vendor_id: str
    display: str
    incident: str | None  # the incident id the ticket carries (Jira label, ServiceNow correlation_id)
    status: str
    done: bool
    assignee: str | None
    responded_at: int | None
    resolved_at: int | None
    resolution: str
    updated_at: int
    comments: tuple[VendorComment, ...] = ()


@dataclass(frozen=True)
class Unreadable:
    """An entry of the vendor's answer that could not be read as a ticket."""

    vendor_id: str
    problem: str


@dataclass
class Page:
    tickets: list[VendorTicket | Unreadable] = field(default_factory=list)
    complete: bool = True  # False: the round stopped early (max_pages, rate limit); the cursor still moves


class VendorReader(ABC):
    kind: ClassVar[str]
    readback: Readback

    @abstractmethod
    async def changed_since(self, cursor_ms: int, page: Page) -> None:
        """Append to `page` the tickets updated at or after `cursor_ms`, oldest update first. Raise TicketError
        when the vendor cannot be read; what was appended before stays usable."""

    @abstractmethod
    async def aclose(self) -> None: ...


def bounded(at: int, low: int, high: int) -> int:
    return min(max(at, low), high)


@dataclass(frozen=True)
class RoundResult:
    read: int
    applied: int
    refused: int
    cursor_ms: int
    error: str = ""


class TicketReadback:
    """The read-back loop of every contract with a reader (`readers` keyed by contract id)."""

    def __init__(
        self,
        store: Store,
        lifecycle: Lifecycle,
        readers: Mapping[str, VendorReader],
        clock: Callable[[], int],
        origin: str,
    ) -> None:
        self._store = store
        self._lifecycle = lifecycle
        self._readers = readers
        self._clock = clock
        self._origin = origin
        self._next: dict[str, int] = {}

    @property
    def contracts(self) -> list[str]:
        """The contracts read back, by id."""
        return sorted(self._readers)

    async def run(self, stop: asyncio.Event, poll_s: float = SAFETY_POLL_S) -> None:
        """A round for each contract whose `every` has passed; in between, sleep until the next one is due, at
        most `poll_s`."""
        while not stop.is_set():
            now = self._clock()
            for cid in self._readers:
                if self._next.get(cid, 0) <= now:
                    self._next[cid] = now + int(self._readers[cid].readback.every.total_seconds() * 1000)
                    try:
                        await self.round(cid)
                    except Exception:
                        log.exception("read-back of contract %s failed; tried again next round", cid)
            due = min(self._next.values(), default=None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), sleep_s(now, self._clock(), due, poll_s))

    async def aclose(self) -> None:
        for reader in self._readers.values():
            with contextlib.suppress(Exception):
                await reader.aclose()

    async def round(self, contract_id: str) -> RoundResult:
        reader = self._readers[contract_id]
        cursor = self._cursor(contract_id)
        page = Page()
        error = ""
        try:
            await reader.changed_since(cursor, page)
        except LinewardenError as exc:
            error = str(exc)[:500]
            log.warning("read-back of contract %s: %s", contract_id, error)
        now = self._clock()
        applied = refused = 0
        newest = cursor
        for entry in page.tickets:
            if isinstance(entry, Unreadable):
                self._refuse(contract_id, "malformed", f"{entry.vendor_id[:TEXT_MAX]}: {entry.problem}", now)
                refused += 1
                continue
            newest = max(newest, min(entry.updated_at, now))
            reason = self._apply(contract_id, reader.kind, entry, now)
            if reason is None:
                applied += 1
            else:
                refused += 1
        with self._store.transaction() as tx:
            tx.sql.execute(
                "UPDATE ticket_readback_cursors SET cursor_ms = ?, rounds = rounds + 1, last_round_at = ?,"
                " last_error = ? WHERE contract_id = ?",
                (newest, now, error, contract_id),
            )
        return RoundResult(len(page.tickets), applied, refused, newest, error)

    def refusals(self, contract_id: str) -> dict[str, int]:
        with self._store.reader() as sql:
            rows = sql.query(
                "SELECT reason, count FROM ticket_readback_refusals WHERE contract_id = ?", (contract_id,)
            )
        return {r["reason"]: int(r["count"]) for r in rows}

    # ------------------------------------------------------------ helpers

    def _cursor(self, contract_id: str) -> int:
        now = self._clock()
        with self._store.transaction() as tx:
            rows = tx.sql.query(
                "SELECT cursor_ms FROM ticket_readback_cursors WHERE contract_id = ?", (contract_id,)
            )
            if rows:
                return int(rows[0]["cursor_ms"])
            first = tx.sql.query(
                "SELECT MIN(raised_at) AS m FROM tickets WHERE contract_id = ? AND phase <> ?", (contract_id, CLOSED)
            )
            start = int(first[0]["m"]) if first and first[0]["m"] is not None else now
            tx.sql.execute(
                "INSERT INTO ticket_readback_cursors (contract_id, cursor_ms, last_round_at) VALUES (?, ?, ?)"
                " ON CONFLICT (contract_id) DO NOTHING",
                (contract_id, start, now),
            )
            return start

    def _refuse(self, contract_id: str, reason: str, detail: str, now: int) -> str:
        log.warning("read-back of contract %s refused an entry (%s): %s", contract_id, reason, detail)
        with self._store.transaction() as tx:
            tx.sql.execute(
                "INSERT INTO ticket_readback_refusals (contract_id, reason, count, last_at, last_detail)"
                " VALUES (?, ?, 1, ?, ?) ON CONFLICT (contract_id, reason) DO UPDATE SET"
                " count = ticket_readback_refusals.count + 1, last_at = excluded.last_at,"
                " last_detail = excluded.last_detail",
                (contract_id, reason, now, detail[:TEXT_MAX]),
            )
        return reason

    def _apply(self, contract_id: str, sink: str, ticket: VendorTicket, now: int) -> str | None:
        """Apply one vendor ticket; the refusal reason, or None when applied."""
        with self._store.reader() as sql:
            rows = sql.query(
                "SELECT incident_id, contract_id, phase, raised_at, acknowledged_at, vendor_resolved_at"
                " FROM tickets WHERE vendor_id = ? AND sink = ?",
                (ticket.vendor_id, sink),
            )
        mine = [r for r in rows if r["contract_id"] == contract_id]
        shown = ticket.display[:TEXT_MAX]
        if not mine:
            return self._refuse(contract_id, "other_contract" if rows else "unknown_ticket", shown, now)
        row = mine[0]
        incident = str(row["incident_id"])
        if ticket.incident is not None and ticket.incident != incident:
            return self._refuse(contract_id, "incident_mismatch", f"{shown} carries {ticket.incident[:80]!r}", now)
        raised = int(row["raised_at"])
        resolved_at = ticket.resolved_at if ticket.resolved_at is not None else ticket.updated_at
        claim = ticket.done and row["phase"] != CLOSED and resolved_at != row["vendor_resolved_at"]
        with self._store.transaction() as tx:
            self._store_state(tx.sql, incident, contract_id, ticket, raised, now)
            if claim:
                tx.sql.execute(
                    "UPDATE tickets SET vendor_resolved_at = ? WHERE incident_id = ? AND contract_id = ?",
                    (resolved_at, incident, contract_id),
                )
        actor = f"vendor:{sink}"
        try:
            if ticket.responded_at is not None and row["acknowledged_at"] is None and row["phase"] != CLOSED:
                self._lifecycle.acknowledge(incident, contract_id, actor, self._origin, at=ticket.responded_at)
            if claim:
                note = f"{ticket.resolution or ticket.status} (read back from {sink} {shown})"
                view = self._lifecycle.claim_resolution(incident, contract_id, note[:COMMENT_MAX], actor, self._origin)
                log.info("ticket %s/%s: %s claims resolved: %s", contract_id, incident, shown, view.phase)
        except TicketError as exc:  # closed meanwhile by someone else: nothing left to apply
            log.info("read-back of %s/%s: %s", contract_id, incident, exc)
        return None

    def _store_state(self, sql: Sql, incident: str, contract_id: str, ticket: VendorTicket, raised: int,
                     now: int) -> None:
        sql.execute(
            "UPDATE tickets SET vendor_status = ?, vendor_assignee = ?, vendor_resolution = ?, read_back_at = ?,"
            " vendor_first_response_at = COALESCE(vendor_first_response_at, ?)"
            " WHERE incident_id = ? AND contract_id = ?",
            (
                ticket.status[:TEXT_MAX], None if ticket.assignee is None else ticket.assignee[:TEXT_MAX],
                ticket.resolution[:TEXT_MAX], now,
                None if ticket.responded_at is None else bounded(ticket.responded_at, raised, now),
                incident, contract_id,
            ),
        )
        added = 0
        for comment in ticket.comments[:COMMENTS_PER_TICKET]:
            added += sql.execute(
                "INSERT INTO ticket_vendor_comments (incident_id, contract_id, comment_id, author, ours, body,"
                " created_at, read_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (incident_id, contract_id, comment_id) DO NOTHING",
                (incident, contract_id, comment.id[:TEXT_MAX], comment.author[:TEXT_MAX], comment.ours,
                 comment.body[:COMMENT_MAX], bounded(comment.created_at, raised, now), now),
            )
        if added:
            append_entry(sql, "collector", self._origin, "ticket.vendor_comments_read",
                         f"ticket/{contract_id}/{incident}", {"added": added, "vendor_ref": ticket.display[:TEXT_MAX]},
                         now)


def vendor_view(sql: Sql, incident: str, contract_id: str) -> dict[str, object]:
    """What the vendor's tool said at the last read-back, for the ticket's record and API."""
    rows = sql.query(
        "SELECT vendor_status, vendor_assignee, vendor_first_response_at, vendor_resolved_at, vendor_resolution,"
        " read_back_at FROM tickets WHERE incident_id = ? AND contract_id = ?",
        (incident, contract_id),
    )
    comments = sql.query(
        "SELECT comment_id, author, ours, body, created_at FROM ticket_vendor_comments"
        " WHERE incident_id = ? AND contract_id = ? ORDER BY created_at, comment_id",
        (incident, contract_id),
    )
    found = dict(rows[0]) if rows else {}
    return {
        "status": found.get("vendor_status"),
        "assignee": found.get("vendor_assignee"),
        "first_response_at": found.get("vendor_first_response_at"),
        "resolved_at": found.get("vendor_resolved_at"),
        "resolution": found.get("vendor_resolution"),
        "read_back_at": found.get("read_back_at"),
        "comments": [
            {"id": c["comment_id"], "author": c["author"], "ours": bool(c["ours"]), "body": c["body"],
             "created_at": int(c["created_at"])}
            for c in comments
        ],
    }
