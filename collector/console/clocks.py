"""An incident's SLA clocks under each contract it concerns, as the reports compute them (same inputs:
`incident_input`, same clock: `run_clock`, same calendars), plus the coverage segments to draw them."""

from __future__ import annotations

from dataclasses import dataclass

from collector.reporting import incident_input
from collector.store.rows import IncidentRow
from linewarden.book import ContractBook
from linewarden.calendar import ALWAYS_ID, Calendar
from linewarden.config.contract import ContractConfig
from linewarden.intervals import subtract
from linewarden.sla.clocks import Clock, resolution_stop, run_clock
from linewarden.sla.coverage import CoverageCalendar
from linewarden.sla.models import Incident
from linewarden.sla.rca import RcaResult, rca_result


@dataclass(frozen=True)
class ClockView:
    name: str  # response | resolution
    clock: Clock
    start_ms: int
    stop_ms: int | None
    running_now: bool  # counting at this moment: coverage open and not paused
    segments: tuple[tuple[int, int], ...]  # coverage time that counted (paused time left out)


@dataclass(frozen=True)
class ContractClocks:
    contract_id: str
    vendor: str
    coverage: str
    incident: Incident
    clocks: tuple[ClockView, ...]
    rca: RcaResult | None


def calendar_of(book: ContractBook, contract: ContractConfig, name: str) -> CoverageCalendar:
    if name in book.calendars:
        return book.calendars[name]
    if name == ALWAYS_ID:
        return Calendar.always(contract.contract.timezone)
    raise KeyError(name)


def contracts_of(book: ContractBook, row: IncidentRow) -> list[ContractConfig]:
    """The contracts an incident concerns: those with a ticket record for it, and those covering its asset."""
    ids = {t.contract for t in row.tickets if t.contract}
    if row.asset is not None:
        ids |= {c.contract.id for c in book.covering(row.asset)}
    return [book.contracts[c] for c in sorted(ids) if c in book.contracts]


def incident_clocks(book: ContractBook, row: IncidentRow, contract: ContractConfig, now: int) -> ContractClocks | None:
    incident = incident_input(row, contract.contract.id, now)
    if incident is None:
        return None
    support = contract.support
    calendar = calendar_of(book, contract, support.coverage)
    target = support.targets.for_severity(incident.severity)
    pauses = incident.pauses if support.pause_allowed else ()
    views: list[ClockView] = []
    if incident.notified_at_ms is not None:
        start = incident.notified_at_ms
        paused_now = any(p.start_ms <= now and (p.end_ms is None or p.end_ms > now) for p in pauses)
        for name, stop, target_ms in (
            ("response", incident.acknowledged_at_ms,
             None if target is None else int(target.response.total_seconds() * 1000)),
            ("resolution", resolution_stop(incident),
             None if target is None else int(target.resolution.total_seconds() * 1000)),
        ):
            clock = run_clock(calendar, start, stop, pauses, now, target_ms)
            end = stop if clock.stopped and stop is not None else now
            paused = [(p.start_ms, end if p.end_ms is None else p.end_ms) for p in pauses]
            segments = tuple(subtract(calendar.open_intervals(start, max(start, end)), paused))
            running = not clock.stopped and not paused_now and calendar.is_open(now)
            views.append(ClockView(name, clock, start, stop, running, segments))
    rca = rca_result(incident, contract.rca, calendar, now)
    return ContractClocks(contract.contract.id, contract.contract.vendor, support.coverage, incident, tuple(views), rca)
