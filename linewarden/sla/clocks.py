"""Response and resolution clocks of one ticket, counted in the support tier's coverage calendar.

- Response runs from `notified_at` (ticket raised) to `acknowledged_at`.
- Resolution runs from `notified_at` to the earlier of the measured restoration and the plant accepting
  a workaround (the vendor's resolution claim does not stop it).
- Both count only open time of the coverage calendar and skip paused time (when the contract allows
  pauses; a pause without an end lasts until the clock stops).
- Nothing after `as_of` is known: a clock whose stop event is later, or missing, is still running; it
  is measured up to `as_of`, breached if already over its target, and otherwise undecided (met = None)
  with `left_ms` of coverage time left before it would breach.
- Which target applies is decided by the incident's edge (measured) severity; the vendor's triaged
  severity is reported beside it but changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from linewarden.intervals import normalize, subtract
from linewarden.sla.coverage import CoverageCalendar
from linewarden.sla.models import Incident, Pause


@dataclass(frozen=True)
class Clock:
    elapsed_ms: int
    target_ms: int | None
    stopped: bool
    met: bool | None
    left_ms: int | None = None  # a running clock not yet breached: coverage time left to its target


def run_clock(
    calendar: CoverageCalendar,
    start_ms: int,
    stop_ms: int | None,
    pauses: tuple[Pause, ...],
    as_of_ms: int,
    target_ms: int | None,
) -> Clock:
    stopped = stop_ms is not None and stop_ms <= as_of_ms
    end = stop_ms if stop_ms is not None and stopped else as_of_ms
    end = max(end, start_ms)
    paused = normalize((p.start_ms, end if p.end_ms is None else p.end_ms) for p in pauses)
    elapsed = sum(calendar.open_ms(s, e) for s, e in subtract([(start_ms, end)], paused))
    if target_ms is None:
        met = None
    elif stopped:
        met = elapsed <= target_ms
    else:
        met = False if elapsed > target_ms else None
    left = target_ms - elapsed if target_ms is not None and not stopped and elapsed <= target_ms else None
    return Clock(elapsed, target_ms, stopped, met, left)


def resolution_stop(incident: Incident) -> int | None:
    stops = [t for t in (incident.restored_at_ms, incident.workaround_accepted_at_ms) if t is not None]
    return min(stops) if stops else None
