"""From the store to SLA reports: one period's measurements and ticket records as SLA engine inputs.

Mapping (documented for people checking figures by hand):
- each target's state changes become that asset's timeline (several targets of one asset: worst wins);
- an agent's monitoring gap covers every asset that agent's targets belong to: those of its target registry
  (births, imported target lists) and those its own state changes and incidents name (imported history of an
  agent that never sent a birth);
- an incident's severity is the worst the edge reported for it (raised, never lowered); the vendor's
  triaged severity is kept beside it; notified = ticket raised, acknowledged = first acknowledgement,
  pauses from paused/resumed pairs, restored = the agent's measured resolution; each contract sees only its
  own ticket's records (those naming it, plus imported ones that name no contract);
- incidents of the 31 days before the period are included so recurrence can see them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from collector.store import Store
from collector.store.rows import IncidentRow, PeriodData, TicketRecordRow
from linewarden.book import ContractBook
from linewarden.domain import Criticality, Severity, State
from linewarden.sla.models import (
    AssetTimeline,
    ChangeDetection,
    Incident,
    MaintenanceWindow,
    MonitoringGap,
    Pause,
    SlaInputs,
    StateChange,
)
from linewarden.sla.periods import Period, parse_month
from linewarden.sla.report import ContractReport, build_report

LOOKBACK_MS = int(timedelta(days=31).total_seconds() * 1000)


def _first(records: list[TicketRecordRow], kind: str) -> int | None:
    times = [t.at for t in records if t.kind == kind]
    return min(times) if times else None


def _records_for(row: IncidentRow, contract_id: str | None) -> list[TicketRecordRow]:
    """The ticket records of one contract's ticket; records that name no contract (imported history) count
    for every contract."""
    return [t for t in row.tickets if contract_id is None or t.contract in ("", contract_id)]


def _pauses(records: list[TicketRecordRow]) -> tuple[Pause, ...]:
    steps = sorted((t.at, t.kind) for t in records if t.kind in ("ticket_paused", "ticket_resumed"))
    out: list[Pause] = []
    start: int | None = None
    for at, kind in steps:
        if kind == "ticket_paused" and start is None:
            start = at
        elif kind == "ticket_resumed" and start is not None:
            out.append(Pause(start, at))
            start = None
    if start is not None:
        out.append(Pause(start, None))
    return tuple(out)


def _severity(row: IncidentRow) -> Severity | None:
    found = [Severity(s.severity) for s in row.severity_history if s.severity]
    if row.severity:
        found.append(Severity(row.severity))
    return min(found, key=lambda s: s.rank) if found else None


def _vendor_severity(records: list[TicketRecordRow]) -> Severity | None:
    triaged = sorted((t.at, t.details.get("severity")) for t in records if t.kind == "ticket_triaged")
    value = triaged[-1][1] if triaged else None
    return Severity(str(value)) if value in {s.value for s in Severity} else None


def incident_input(row: IncidentRow, contract_id: str | None = None) -> Incident | None:
    """One incident as one contract's ticket saw it (`contract_id` None: every ticket record)."""
    severity = _severity(row)
    if row.kind != "target" or row.asset is None or row.opened_at is None or severity is None:
        return None
    records = _records_for(row, contract_id)
    return Incident(
        id=row.id,
        asset=row.asset,
        severity=severity,
        reason=row.reason or "",
        opened_at_ms=row.opened_at,
        notified_at_ms=_first(records, "ticket_raised"),
        acknowledged_at_ms=_first(records, "ticket_acknowledged"),
        pauses=_pauses(records),
        restored_at_ms=row.resolved_at,
        workaround_accepted_at_ms=_first(records, "workaround_accepted"),
        resolution_claimed_at_ms=_first(records, "resolution_claimed"),
        rca_received_at_ms=_first(records, "rca_received"),
        vendor_severity=_vendor_severity(records),
    )


def sla_inputs(data: PeriodData, contract_id: str | None = None) -> SlaInputs:
    by_target: dict[tuple[str, str, str], list[StateChange]] = {}
    asset_of: dict[tuple[str, str, str], str] = {}
    for change in data.state_changes:
        key = (change.site, change.agent, change.target)
        by_target.setdefault(key, []).append(StateChange(change.at, State(change.to_state)))
        asset_of[key] = change.asset
    timelines = tuple(
        AssetTimeline.from_changes(asset_of[key], changes, data.end) for key, changes in sorted(by_target.items())
    )
    assets_of_agent: dict[tuple[str, str], set[str]] = {}
    criticality: dict[str, Criticality] = {}
    for t in data.targets:
        assets_of_agent.setdefault((t.site, t.agent), set()).add(t.asset)
        criticality[t.asset] = Criticality(t.criticality)
    for c in data.state_changes:
        assets_of_agent.setdefault((c.site, c.agent), set()).add(c.asset)
    for i in data.incidents:
        if i.kind == "target" and i.asset is not None:
            assets_of_agent.setdefault((i.site, i.agent), set()).add(i.asset)
            if i.criticality is not None:
                criticality.setdefault(i.asset, Criticality(i.criticality))
    gaps = tuple(
        MonitoringGap(
            g.start_at,
            g.end_at if g.end_at is not None else data.end,
            tuple(sorted(assets_of_agent.get((g.site, g.agent), set()))),
            g.reason,
        )
        for g in data.gaps
        if assets_of_agent.get((g.site, g.agent))
    )
    windows = tuple(
        MaintenanceWindow(
            id=w.id,
            start_ms=w.start_at,
            end_ms=w.end_at,
            announced_at_ms=w.announced_at,
            announced_by=w.announced_by,
            assets=w.assets,
            services=w.services,
            kind="change" if w.kind == "change" else "maintenance",
            cancelled=w.cancelled_at is not None,
            reason=w.reason,
        )
        for w in data.maintenance_windows
    )
    incidents = tuple(i for i in (incident_input(r, contract_id) for r in data.incidents) if i is not None)
    changes = tuple(ChangeDetection(c.asset, c.at, c.what) for c in data.changes)
    return SlaInputs(timelines, gaps, windows, incidents, changes, criticality)


def reports(
    store: Store, book: ContractBook, month: str, contract_id: str | None = None, as_of_ms: int | None = None
) -> list[ContractReport]:
    """The SLA report of each contract (or the one named) for the month 'YYYY-MM' in its own time zone."""
    chosen = [book.contract(contract_id)] if contract_id else [book.contracts[c] for c in sorted(book.contracts)]
    out = []
    cache: dict[tuple[int, int], PeriodData] = {}
    for contract in chosen:
        period = parse_month(month, contract.contract.timezone)
        key = (period.start_ms, period.end_ms)
        if key not in cache:
            cache[key] = _period_data(store, period)
        inputs = sla_inputs(cache[key], contract.contract.id)
        out.append(build_report(contract, period, inputs, book.calendars, as_of_ms))
    return out


def _period_data(store: Store, period: Period) -> PeriodData:
    return store.period(period.start_ms - LOOKBACK_MS, period.end_ms)


# ------------------------------------------------------------ rendering


def _s(ms: int | None) -> str | None:
    return None if ms is None else f"{ms / 1000:.0f}"


def uptime_rows(report: ContractReport) -> list[dict[str, Any]]:
    return [
        {
            "contract": report.contract_id,
            "scope": line.scope,
            "coverage": line.coverage,
            "target_pct": str(line.target_pct),
            "covered_s": _s(line.measure.covered_ms),
            "excluded_s": _s(line.measure.excluded_ms),
            "downtime_s": f"{line.measure.downtime_ms / 1000:.1f}",
            "uptime_pct": str(line.uptime_pct),
            "met": "yes" if line.met else "NO",
        }
        for line in report.uptime
    ]


def incident_rows(report: ContractReport, fmt_time: Any) -> list[dict[str, Any]]:
    rows = []
    for i in report.incidents:
        rows.append(
            {
                "contract": report.contract_id,
                "incident": i.id,
                "asset": i.asset,
                "severity": i.severity.value,
                "vendor_severity": i.vendor_severity.value if i.vendor_severity else None,
                "opened": fmt_time(i.opened_ms),
                "notified": fmt_time(i.notified_ms),
                "acknowledged": fmt_time(i.acknowledged_ms),
                "restored": fmt_time(i.restored_ms),
                "response_s": _s(i.response.elapsed_ms) if i.response else None,
                "response_met": _met(i.response.met) if i.response else None,
                "resolution_s": _s(i.resolution.elapsed_ms) if i.resolution else None,
                "resolution_met": _met(i.resolution.met) if i.resolution else None,
                "recurring": "yes" if i.recurring else "",
            }
        )
    return rows


def _met(met: bool | None) -> str:
    return "open" if met is None else ("yes" if met else "NO")


def exclusion_rows(report: ContractReport, fmt_time: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "contract": report.contract_id,
            "scope": e.scope,
            "asset": e.asset,
            "kind": e.reason,
            "start": fmt_time(e.start_ms),
            "end": fmt_time(e.end_ms),
            "excluded_s": _s(e.ms),
            "note": ", ".join(e.windows),
        }
        for e in report.exclusions
    ]
    rows += [
        {
            "contract": report.contract_id,
            "scope": s.scope,
            "asset": None,
            "kind": "short_notice (counted)",
            "start": fmt_time(s.start_ms),
            "end": fmt_time(s.end_ms),
            "excluded_s": "0",
            "note": f"window {s.window}: {s.notice_given_ms / 3_600_000:.1f} h notice, "
            f"{s.notice_required_ms / 3_600_000:.0f} h required; downtime {float(s.downtime_ms) / 1000:.0f} s",
        }
        for s in report.short_notice
    ]
    return rows


def credit_rows(report: ContractReport) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "contract": report.contract_id,
            "kind": c.kind,
            "ref": c.ref,
            "detail": c.detail,
            "fee_pct": str(c.fee_pct),
            "amount": f"{c.amount:.2f}",
        }
        for c in report.credits.lines
    ]
    cr = report.credits
    rows.append(
        {
            "contract": report.contract_id,
            "kind": "total",
            "ref": f"cap {cr.cap:.2f}" + (" (applied)" if cr.capped else ""),
            "detail": f"subtotal {cr.subtotal:.2f}",
            "fee_pct": None,
            "amount": f"{cr.total:.2f} {report.currency}",
        }
    )
    return rows


def scorecard_row(report: ContractReport) -> dict[str, Any]:
    sc = report.scorecard
    compliance = {
        f"{s.severity.value}_resp_pct": None if s.response_compliance_pct is None else str(s.response_compliance_pct)
        for s in sc.by_severity
    }
    row: dict[str, Any] = {
        "contract": report.contract_id,
        "vendor": report.vendor,
        "uptime_met": f"{sc.uptime_lines_met}/{sc.uptime_lines}",
        "incidents": sc.incidents,
        "mtta_s": _s(sc.mtta_ms),
        "mttr_s": _s(sc.mttr_ms),
        "recurrence_pct": str(sc.recurrence_rate_pct),
        "rca_on_time": f"{sc.rca_on_time}/{sc.rca_on_time + sc.rca_late + sc.rca_pending}",
        "unapproved_changes": sc.unapproved_changes,
        "credits": f"{sc.credits_owed:.2f} {report.currency}",
        "score": str(sc.score),
    }
    row.update({k: v for k, v in compliance.items() if v is not None})
    return row


def iter_sections(report: ContractReport, fmt_time: Any) -> Iterable[tuple[str, list[dict[str, Any]]]]:
    yield "uptime", uptime_rows(report)
    yield "incidents", incident_rows(report, fmt_time)
    yield "exclusions", exclusion_rows(report, fmt_time)
    yield "credits", credit_rows(report)
    yield "scorecard", [scorecard_row(report)]
