"""From the store to SLA reports: one period's measurements and ticket records as SLA engine inputs.

Mapping (documented for people checking figures by hand):
- each target's state changes become that asset's timeline (several targets of one asset: worst wins); a
  change to UNKNOWN with a `config.*` cause, up to the target's next change, is a configuration fault;
- an agent's monitoring gap covers every asset that agent's targets belong to: those of its target registry
  (births, imported target lists) and those its own state changes and incidents name (imported history of an
  agent that never sent a birth);
- an incident's severity is the worst the edge reported for it (raised, never lowered); the vendor's
  triaged severity is kept beside it; notified = ticket raised, acknowledged = first acknowledgement,
  pauses from paused/resumed pairs, restored = the agent's measured resolution;
- a contract's clocks of one incident read one source of ticket records, never a mix: the records of
  that contract's own ticket when there is any, else the records naming no contract (imported history);
- as of `as_of`: ticket records and severity steps dated later are left out;
- incidents of the 31 days before the period are included so recurrence can see them;
- settled disputes of the contract replace the values they settle before computing, and the report lists
  the disputes about its incidents (linewarden/sla/disputes.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from collector.audit_evidence import Checkpoint
from collector.conduct import add_conduct
from collector.dispute_records import contract_notes
from collector.maintenance import period_assets, selected_assets
from collector.store import Store
from collector.store.rows import IncidentRow, PeriodData, StateChangeRow, TicketRecordRow
from linewarden.book import ContractBook
from linewarden.domain import Criticality, Severity, State
from linewarden.sla.clocks import Clock
from linewarden.sla.disputes import apply_settlements, mark_report, period_incident_ids, settlement
from linewarden.sla.models import (
    AssetTimeline,
    ChangeDetection,
    ConfigurationFault,
    Incident,
    MaintenanceWindow,
    MonitoringGap,
    Pause,
    SlaInputs,
    StateChange,
)
from linewarden.sla.periods import Period, parse_month, report_as_of
from linewarden.sla.rca import RcaResult
from linewarden.sla.report import ContractReport, build_report
from linewarden.timeutil import dt_to_ms

LOOKBACK_MS = int(timedelta(days=31).total_seconds() * 1000)
_SEVERITIES = frozenset(s.value for s in Severity)


def _firsts(records: list[TicketRecordRow]) -> dict[str, int]:
    """The earliest time of each kind of record, in one pass."""
    first: dict[str, int] = {}
    for t in records:
        at = first.get(t.kind)
        if at is None or t.at < at:
            first[t.kind] = t.at
    return first


def _records_for(row: IncidentRow, contract_id: str | None, as_of_ms: int | None) -> list[TicketRecordRow]:
    """The ticket records one contract's clocks read: its own ticket's if it has any, else those that name
    no contract; never both (an imported acknowledgement must not stop a clock the live ticket started)."""
    known = [t for t in row.tickets if as_of_ms is None or t.at <= as_of_ms]
    if contract_id is None:
        return known
    own = [t for t in known if t.contract == contract_id]
    return own or [t for t in known if t.contract == ""]


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


def _severity(row: IncidentRow, as_of_ms: int | None) -> Severity | None:
    steps = [s for s in row.severity_history if as_of_ms is None or s.at <= as_of_ms]
    found = [Severity(s.severity) for s in steps if s.severity]
    if row.severity:
        found.append(Severity(row.severity))
    return min(found, key=lambda s: s.rank) if found else None


def _vendor_severity(records: list[TicketRecordRow]) -> Severity | None:
    triaged = sorted((t.at, t.details.get("severity")) for t in records if t.kind == "ticket_triaged")
    value = triaged[-1][1] if triaged else None
    return Severity(str(value)) if value in _SEVERITIES else None


def incident_input(row: IncidentRow, contract_id: str | None = None, as_of_ms: int | None = None) -> Incident | None:
    """One incident as one contract's ticket saw it (`contract_id` None: every ticket record), as known at
    `as_of_ms` (None: everything stored)."""
    severity = _severity(row, as_of_ms)
    if row.kind != "target" or row.asset is None or row.opened_at is None or severity is None:
        return None
    records = _records_for(row, contract_id, as_of_ms)
    first = _firsts(records)
    return Incident(
        id=row.id,
        asset=row.asset,
        severity=severity,
        reason=row.reason or "",
        cause=row.cause or "",
        opened_at_ms=row.opened_at,
        notified_at_ms=first.get("ticket_raised"),
        acknowledged_at_ms=first.get("ticket_acknowledged"),
        pauses=_pauses(records),
        restored_at_ms=row.resolved_at,
        workaround_accepted_at_ms=first.get("workaround_accepted"),
        resolution_claimed_at_ms=first.get("resolution_claimed"),
        rca_received_at_ms=first.get("rca_received"),
        vendor_severity=_vendor_severity(records),
    )


def configuration_faults(data: PeriodData) -> tuple[ConfigurationFault, ...]:
    """Each target's time in a configuration UNKNOWN (a change to UNKNOWN with a `config.*` cause), up to its
    next state change: never the vendor's, whatever the contract's monitoring-gap policy."""
    by_target: dict[tuple[str, str, str], list[StateChangeRow]] = {}
    for change in data.state_changes:
        by_target.setdefault((change.site, change.agent, change.target), []).append(change)
    out: list[ConfigurationFault] = []
    for changes in by_target.values():
        ordered = sorted(changes, key=lambda c: c.at)
        for change, end in zip(ordered, [c.at for c in ordered[1:]] + [data.end], strict=True):
            cause = change.cause or ""
            if change.to_state == State.UNKNOWN.value and cause.startswith("config.") and end > change.at:
                out.append(ConfigurationFault(change.asset, change.at, end, cause))
    return tuple(out)


def sla_inputs(data: PeriodData, contract_id: str | None = None, as_of_ms: int | None = None) -> SlaInputs:
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
    # Windows may select a whole site, lines (agents) or asset classes: the registry says which assets.
    known = period_assets(data)
    windows = tuple(
        MaintenanceWindow(
            id=w.id,
            start_ms=w.start_at,
            end_ms=w.end_at,
            announced_at_ms=w.announced_at,
            announced_by=w.announced_by,
            assets=selected_assets(w, w.site, known),
            services=w.services,
            kind="change" if w.kind == "change" else "maintenance",
            cancelled=w.cancelled_at is not None,
            cancelled_at_ms=w.cancelled_at,
            reason=w.reason,
            back_dated=w.back_dated,
        )
        for w in data.maintenance_windows
    )
    incidents = tuple(
        i for i in (incident_input(r, contract_id, as_of_ms) for r in data.incidents) if i is not None
    )
    changes = tuple(ChangeDetection(c.asset, c.at, c.what) for c in data.changes)
    return SlaInputs(timelines, gaps, windows, incidents, changes, criticality, configuration_faults(data))


def reports(
    store: Store,
    book: ContractBook,
    month: str,
    contract_id: str | None = None,
    as_of_ms: int | None = None,
    now_ms: int | None = None,
) -> list[ContractReport]:
    """The SLA report of each contract (or the one named) for the month 'YYYY-MM' in its own time zone, as
    of `as_of_ms`; without it as of `now_ms`, the report time (see `report_as_of`).
    Raises ValueError for an `as_of_ms` later than `now_ms`: nothing is known of the future."""
    if as_of_ms is not None and now_ms is not None and as_of_ms > now_ms:
        raise ValueError("as_of is later than now: a report can only be as of a time that has come")
    chosen = [book.contract(contract_id)] if contract_id else [book.contracts[c] for c in sorted(book.contracts)]
    out = []
    cache: dict[tuple[int, int], PeriodData] = {}
    for contract in chosen:
        period = parse_month(month, contract.contract.timezone)
        key = (period.start_ms, period.end_ms)
        if key not in cache:
            cache[key] = _period_data(store, period)
        as_of = as_of_ms if as_of_ms is not None else report_as_of(period, now_ms)
        inputs = sla_inputs(cache[key], contract.contract.id, as_of)
        notes = contract_notes(store, contract.contract.id)
        settled = [s for s in (settlement(n) for n in notes) if s is not None]
        built = build_report(contract, period, apply_settlements(inputs, settled, as_of), book.calendars, as_of)
        marked = mark_report(built, notes, period_incident_ids(inputs, period, as_of))
        out.append(add_conduct(marked, store, book, contract, period, cache[key], inputs, as_of))
    return out


def parse_as_of(text: str) -> int:
    """An as-of time given by a person: ISO 8601 with a UTC offset or Z, since a time without one would be
    ambiguous. Raises ValueError saying what is wrong."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from None
    if dt.tzinfo is None:
        raise ValueError(f"{text!r} has no zone: give its UTC offset, e.g. {text}+01:00 or {text}Z")
    return dt_to_ms(dt)


def _period_data(store: Store, period: Period) -> PeriodData:
    return store.period(period.start_ms - LOOKBACK_MS, period.end_ms)


# ------------------------------------------------------------ rendering


def _s(ms: int | None) -> str | None:
    return None if ms is None else f"{ms / 1000:.0f}"


def _duration(ms: int) -> str:
    """A readable duration: '2d 3h', '5h 12m', '4m 10s', '12s'."""
    s = ms // 1000
    d, h, m = s // 86_400, s % 86_400 // 3600, s % 3600 // 60
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    return f"{m}m {s % 60}s" if m else f"{s}s"


def period_note(report: ContractReport, fmt_time: Any) -> str:
    when = f"{fmt_time(report.as_of_ms)} {report.timezone}"
    return f"partial period, as of {when}" if report.partial else f"whole period (as of {when})"


def period_rows(report: ContractReport, fmt_time: Any) -> list[dict[str, Any]]:
    return [
        {
            "contract": report.contract_id,
            "period": report.period.label,
            "start": fmt_time(report.period.start_ms),
            "end": fmt_time(report.period.end_ms),
            "as_of": fmt_time(report.as_of_ms),
            "partial": "yes" if report.partial else "no",
            "note": period_note(report, fmt_time),
        }
    ]


_STATUS_TEXT = {"not_observed": "n/a", "insufficient_data": "n/a: insufficient data"}


def uptime_rows(report: ContractReport) -> list[dict[str, Any]]:
    rows = []
    for line in report.uptime:
        m = line.measure
        rows.append(
            {
                "contract": report.contract_id,
                "scope": line.scope,
                "coverage": line.coverage,
                "target_pct": str(line.target_pct),
                "covered_s": _s(m.covered_ms),
                "excluded_s": _s(m.excluded_ms),
                "observed_pct": None if line.observed_pct is None else str(line.observed_pct),
                "observed": _duration(line.observed_ms),
                "gaps": _duration(m.gap_ms),
                "downtime_s": f"{m.downtime_ms / 1000:.1f}",
                "uptime_pct": "n/a: not observed" if line.uptime_pct is None else str(line.uptime_pct),
                "met": _STATUS_TEXT.get(line.status) or ("yes" if line.met else "no"),
            }
        )
    return rows


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
                "response_met": _met(i.response) if i.response else None,
                "resolution_s": _s(i.resolution.elapsed_ms) if i.resolution else None,
                "resolution_met": _met(i.resolution) if i.resolution else None,
                "recurring": "yes" if i.recurring else "no",
                "rca": _rca(i.rca, fmt_time),
                "disputed": ", ".join(i.disputed),
            }
        )
    return rows


def _met(clock: Clock) -> str:
    if clock.met is not None:
        return "yes" if clock.met else "no"
    if clock.left_ms is None:
        return "no target"
    return f"running, {_duration(clock.left_ms)} left"


def _rca(rca: RcaResult | None, fmt_time: Any) -> str | None:
    if rca is None:
        return None
    if rca.status == "not_due":
        return "after restoration"
    text = rca.status.replace("_", " ")
    return f"{text} (due {fmt_time(rca.due_ms)})" if rca.due_ms is not None else text


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
            "note": ", ".join(f"{w} (back-dated)" if w in e.back_dated else w for w in e.windows),
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
            "note": f"window {s.window}{' (back-dated)' if s.back_dated else ''}:"
            f" {s.notice_given_ms / 3_600_000:.1f} h notice, "
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
        "uptime_met": f"{sc.uptime_lines_met}/{sc.uptime_lines}"
        + (f" ({sc.uptime_lines_undecided} n/a)" if sc.uptime_lines_undecided else ""),
        "incidents": sc.incidents,
        "mtta_s": _s(sc.mtta_ms),
        "mttr_s": _s(sc.mttr_ms),
        "recurrence_pct": str(sc.recurrence_rate_pct),
        "rca_on_time": f"{sc.rca_on_time}/{sc.rca_on_time + sc.rca_late}"
        + (f" ({sc.rca_pending} pending)" if sc.rca_pending else ""),
        "unapproved_changes": sc.unapproved_changes,
        "credits": f"{sc.credits_owed:.2f} {report.currency}",
        "score": str(sc.score),
    }
    row.update({k: v for k, v in compliance.items() if v is not None})
    row.update(
        untested_patches=sc.untested_patches,
        unapproved_version_changes=sc.unapproved_version_changes,
        rollbacks=sc.rollbacks,
        flagged_remote_sessions=sc.flagged_remote_sessions,
    )
    return row


FINDING_TEXT = {"untested_patch": "untested patch", "unapproved_change": "unapproved change"}


def patch_rows(report: ContractReport, fmt_time: Any) -> list[dict[str, Any]]:
    return [
        {
            "contract": report.contract_id,
            "asset": c.asset,
            "what": c.what,
            "old": c.old,
            "new": c.new,
            "at": fmt_time(c.at_ms),
            "finding": ", ".join(FINDING_TEXT[f] for f in c.findings) or "ok",
            "rollback": "yes" if c.rollback else "no",
            "staging": c.staging_asset,
            "staging_since": fmt_time(c.staging_since_ms),
            "staged": _duration(c.staged_ms),
            "required": _duration(c.required_ms),
            "window": c.window,
            "change_ref": c.change_ref,
        }
        for c in report.patch_changes
    ]


def session_rows(report: ContractReport, fmt_time: Any) -> list[dict[str, Any]]:
    return [
        {
            "contract": report.contract_id,
            "gateway": s.gateway,
            "session": s.id,
            "user": s.user,
            "from": s.source,
            "asset": s.asset,
            "start": fmt_time(s.start_ms),
            "end": fmt_time(s.end_ms),
            "ticket": s.incident,
            "windows": ", ".join(s.windows),
            "uncovered": _duration(s.uncovered_ms),
            "flag": "outside ticket and approved window" if s.flagged else "",
        }
        for s in report.remote_sessions
    ]


def with_checkpoint(report: ContractReport, checkpoint: Checkpoint | None) -> dict[str, Any]:
    """The report's JSON with the audit log's latest signed checkpoint (null when none was written yet),
    so the vendor receiving it holds the anchor too."""
    return {**report.to_dict(), "audit_checkpoint": checkpoint.to_dict() if checkpoint else None}


def _value(field: str, value: object, fmt_time: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(fmt_time(value)) if isinstance(value, int) and field.endswith("_at") else str(value)


def dispute_rows(report: ContractReport, fmt_time: Any) -> list[dict[str, Any]]:
    return [
        {
            "contract": report.contract_id,
            "dispute": d.id,
            "incident": d.incident_id,
            "field": d.field,
            "state": d.state,
            "disputed": _value(d.field, d.disputed_value, fmt_time),
            "proposed": _value(d.field, d.proposed_value, fmt_time),
            "reason": d.reason,
            "opened": fmt_time(d.opened_ms),
            "outcome": d.outcome,
            "settled": _value(d.field, d.settled_value, fmt_time),
            "settle_reason": d.settle_reason,
            "settled_at": fmt_time(d.settled_ms),
        }
        for d in report.disputes
    ]


def iter_sections(
    report: ContractReport, fmt_time: Any, checkpoint: Checkpoint | None = None
) -> Iterable[tuple[str, list[dict[str, Any]]]]:
    yield "period", period_rows(report, fmt_time)
    yield "uptime", uptime_rows(report)
    yield "incidents", incident_rows(report, fmt_time)
    yield "exclusions", exclusion_rows(report, fmt_time)
    yield "credits", credit_rows(report)
    yield "scorecard", [scorecard_row(report)]
    yield "disputes", dispute_rows(report, fmt_time)
    yield "patch_changes", patch_rows(report, fmt_time)
    yield "remote_sessions", session_rows(report, fmt_time)
    if checkpoint is not None:
        fields = ("count", "head", "at", "collector", "key_id", "signature")
        yield "audit_checkpoint", [{k: checkpoint.to_dict()[k] for k in fields}]
