"""Vendor remote sessions on the record: `judge(...)`, a pure function of its inputs.

Rules (docs/changes-and-remote-access.md says them for users):
- A session lasts from its start to its end; one still open (no end recorded) lasts until `as_of_ms`.
- It is **attached** to the open ticket on its asset: the incident of that asset open at the session's start
  (opened <= start, not resolved by then), else the one open longest during the session.
- Its **uncovered** time is the part of it outside every interval in which an incident on its asset was open
  and every approved change window covering its asset. A session with uncovered time is **flagged**.
- Sessions of the period are those overlapping [start_ms, min(end_ms, as_of_ms)); a session known only
  after `as_of_ms` does not exist yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from linewarden.intervals import Interval, intersect, normalize, subtract, total
from linewarden.sla.patch_policy import ApprovedWindow


@dataclass(frozen=True)
class Session:
    id: str
    gateway: str
    user: str
    source: str
    asset: str
    start_ms: int
    end_ms: int | None


@dataclass(frozen=True)
class OpenTicket:
    incident: str
    asset: str
    opened_ms: int
    resolved_ms: int | None


@dataclass(frozen=True)
class JudgedSession:
    id: str
    gateway: str
    user: str
    source: str
    asset: str
    start_ms: int
    end_ms: int | None
    incident: str | None  # the ticket it is attached to
    windows: tuple[str, ...]  # approved windows it overlaps
    uncovered_ms: int
    flagged: bool


def _span(start: int, end: int | None, as_of_ms: int) -> Interval:
    """A session or ticket as an interval; at least 1 ms long, so a session that ended as it began is judged."""
    stop = as_of_ms if end is None else end
    return (start, max(start + 1, stop))


def _attach(session: Interval, start_ms: int, tickets: list[OpenTicket], as_of_ms: int) -> str | None:
    open_at_start = [
        t for t in tickets if t.opened_ms <= start_ms and (t.resolved_ms is None or t.resolved_ms > start_ms)
    ]
    if open_at_start:
        return max(open_at_start, key=lambda t: (t.opened_ms, t.incident)).incident
    overlaps = [
        (total(intersect([session], [_span(t.opened_ms, t.resolved_ms, as_of_ms)])), t.incident) for t in tickets
    ]
    best = max(overlaps, default=(0, ""))
    return best[1] if best[0] > 0 else None


def judge(
    sessions: Iterable[Session],
    tickets: Iterable[OpenTicket],
    windows: Iterable[ApprovedWindow],
    start_ms: int,
    end_ms: int,
    as_of_ms: int,
) -> list[JudgedSession]:
    stop = min(end_ms, as_of_ms)
    ticket_list = [t for t in tickets if t.opened_ms <= as_of_ms]
    window_list = [w for w in windows if not w.cancelled and w.approved_at_ms <= as_of_ms]
    out: list[JudgedSession] = []
    for s in sessions:
        if s.start_ms > as_of_ms:
            continue
        end = None if s.end_ms is None or s.end_ms > as_of_ms else s.end_ms
        span = _span(s.start_ms, end, as_of_ms)
        if not (span[0] < stop and span[1] > start_ms):
            continue
        mine = [t for t in ticket_list if t.asset == s.asset]
        # A window counts from its approval: time before it was approved is not covered by it.
        mine_windows = [w for w in window_list if s.asset in w.assets]
        covered = normalize(
            [_span(t.opened_ms, t.resolved_ms, as_of_ms) for t in mine]
            + [(max(w.start_ms, w.approved_at_ms), w.end_ms) for w in mine_windows if w.end_ms > w.approved_at_ms]
        )
        uncovered = total(subtract([span], covered))
        out.append(
            JudgedSession(
                id=s.id,
                gateway=s.gateway,
                user=s.user,
                source=s.source,
                asset=s.asset,
                start_ms=s.start_ms,
                end_ms=end,
                incident=_attach(span, s.start_ms, mine, as_of_ms),
                windows=tuple(sorted(w.id for w in mine_windows if w.start_ms < span[1] and span[0] < w.end_ms)),
                uncovered_ms=uncovered,
                flagged=uncovered > 0,
            )
        )
    return sorted(out, key=lambda j: (j.start_ms, j.gateway, j.id))
