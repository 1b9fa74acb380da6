"""Settled disputes as an input transformation: `apply_settlements(inputs, settlements, as_of_ms)`.

A vendor disputes one field of one incident; plant IT settles it. An accepted or amended settlement
replaces the disputed value in the SLA inputs before the report is computed, so every figure (clocks,
breaches, credits, recurrence, uptime) follows the outcome; a rejected one changes nothing. Settlements
made after `as_of_ms` are not known yet and change nothing either.

Fields:
- timing (ms since the epoch): notified_at, acknowledged_at, restored_at, workaround_accepted_at,
  resolution_claimed_at, rca_received_at replace the incident's time. A settled `restored_at` also
  redraws the asset's timeline between the measured and the settled restoration: UP when the settled one
  is earlier, DOWN when later (no measured restoration: up to the end of the asset's timeline);
- classification: `severity` (S1–S4) replaces the edge severity; `excluded` true takes the incident out
  (no clocks, breaches or recurrence) and excludes the asset's time from its opening to its restoration
  from uptime, as a window named `dispute:<id>` that the report's exclusions list;
- cause: `cause` (text) replaces both the incident's cause code and its reason text, so recurrence
  compares the settled cause and the report shows it.
Several settlements of one field of one incident: the latest settled wins.

Reports (`mark_report`): a report lists the disputes about its period's incidents opened by its as-of
time, each as it stood then (settled later: still open), and marks each incident row with the ids of
its disputes still open.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from linewarden.domain import Severity, State
from linewarden.sla.models import AssetTimeline, Incident, MaintenanceWindow, Segment, SlaInputs
from linewarden.sla.periods import Period
from linewarden.sla.report import ContractReport, _in_period
from linewarden.sla.results import DisputeNote

TIMING_FIELDS = (
    "notified_at",
    "acknowledged_at",
    "restored_at",
    "workaround_accepted_at",
    "resolution_claimed_at",
    "rca_received_at",
)
CLASSIFICATION_FIELDS = ("severity", "excluded")
FIELDS = (*TIMING_FIELDS, *CLASSIFICATION_FIELDS, "cause")
MAX_CAUSE = 500

Outcome = Literal["accepted", "amended", "rejected"]
OUTCOMES: tuple[Outcome, ...] = ("accepted", "amended", "rejected")
Value = int | str | bool | None
WINDOW_PREFIX = "dispute:"


def category(field: str) -> str:
    """timing, classification or cause."""
    if field in TIMING_FIELDS:
        return "timing"
    return "classification" if field in CLASSIFICATION_FIELDS else "cause"


def parse_value(field: str, raw: object) -> int | str | bool:
    """The value a dispute proposes (or a settlement sets) for `field`, checked; raises ValueError."""
    if field in TIMING_FIELDS:
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < 10**14:
            raise ValueError(f"{field}: give a time in ms since the epoch")
        return raw
    if field == "severity":
        if raw not in {s.value for s in Severity}:
            raise ValueError("severity: give one of S1, S2, S3, S4")
        return str(raw)
    if field == "excluded":
        if not isinstance(raw, bool):
            raise ValueError("excluded: give true or false")
        return raw
    if field == "cause":
        if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_CAUSE:
            raise ValueError(f"cause: give a text of 1 to {MAX_CAUSE} characters")
        return raw.strip()
    raise ValueError(f"no such field {field!r}: one of {', '.join(FIELDS)}")


@dataclass(frozen=True)
class Settlement:
    """Plant IT's decision on one dispute; `value` is the settled value (unused when rejected)."""

    dispute_id: str
    incident_id: str
    field: str
    outcome: Outcome
    value: Value
    settled_at_ms: int


def current_value(incident: Incident, field: str) -> Value:
    """The value the inputs hold for `field` (what a dispute disputes)."""
    if field in TIMING_FIELDS:
        value: int | None = getattr(incident, f"{field}_ms")
        return value
    if field == "severity":
        return incident.severity.value
    if field == "excluded":
        return False
    return incident.cause or incident.reason


def apply_settlements(inputs: SlaInputs, settlements: Iterable[Settlement], as_of_ms: int) -> SlaInputs:
    """`inputs` with the accepted and amended settlements known at `as_of_ms` applied."""
    chosen: dict[tuple[str, str], Settlement] = {}
    for s in sorted(settlements, key=lambda s: (s.settled_at_ms, s.dispute_id)):
        if s.outcome != "rejected" and s.settled_at_ms <= as_of_ms and s.field in FIELDS:
            chosen[(s.incident_id, s.field)] = s
    if not chosen:
        return inputs
    timelines = list(inputs.timelines)
    windows = list(inputs.windows)
    incidents: list[Incident] = []
    for incident in inputs.incidents:
        changed = incident
        excluded: Settlement | None = None
        for (incident_id, field), s in sorted(chosen.items()):
            if incident_id != incident.id:
                continue
            if field == "excluded":
                excluded = s if s.value is True else None
            elif field == "restored_at" and isinstance(s.value, int):
                timelines = _redraw(timelines, incident.asset, incident.restored_at_ms, s.value)
                changed = dataclasses.replace(changed, restored_at_ms=s.value)
            elif field in TIMING_FIELDS and isinstance(s.value, int):
                changed = _with_time(changed, field, s.value)
            elif field == "severity" and isinstance(s.value, str):
                changed = dataclasses.replace(changed, severity=Severity(s.value))
            elif field == "cause" and isinstance(s.value, str):
                changed = dataclasses.replace(changed, reason=s.value, cause=s.value)
        if excluded is None:
            incidents.append(changed)
            continue
        end = changed.restored_at_ms if changed.restored_at_ms is not None else _timeline_end(timelines, changed.asset)
        if end is not None and end > changed.opened_at_ms:
            windows.append(
                MaintenanceWindow(
                    id=f"{WINDOW_PREFIX}{excluded.dispute_id}",
                    start_ms=changed.opened_at_ms,
                    end_ms=end,
                    announced_at_ms=0,
                    announced_by="dispute settlement",
                    assets=(changed.asset,),
                    reason=f"incident {changed.id} excluded by dispute {excluded.dispute_id}",
                )
            )
    return dataclasses.replace(inputs, timelines=tuple(timelines), windows=tuple(windows), incidents=tuple(incidents))


def _with_time(incident: Incident, field: str, ms: int) -> Incident:
    r = dataclasses.replace
    if field == "notified_at":
        return r(incident, notified_at_ms=ms)
    if field == "acknowledged_at":
        return r(incident, acknowledged_at_ms=ms)
    if field == "workaround_accepted_at":
        return r(incident, workaround_accepted_at_ms=ms)
    if field == "resolution_claimed_at":
        return r(incident, resolution_claimed_at_ms=ms)
    return r(incident, rca_received_at_ms=ms)


def _timeline_end(timelines: list[AssetTimeline], asset: str) -> int | None:
    ends = [s.end_ms for t in timelines if t.asset == asset for s in t.segments]
    return max(ends) if ends else None


def _redraw(timelines: list[AssetTimeline], asset: str, measured: int | None, settled: int) -> list[AssetTimeline]:
    """The asset's timelines with [settled, measured) UP or [measured, settled) DOWN."""
    if measured is None:
        end = _timeline_end(timelines, asset)
        if end is None or settled >= end:
            return timelines
        start, stop, state = settled, end, State.UP
    elif settled == measured:
        return timelines
    else:
        start, stop = min(settled, measured), max(settled, measured)
        state = State.UP if settled < measured else State.DOWN
    out: list[AssetTimeline] = []
    placed = False
    for t in timelines:
        if t.asset != asset:
            out.append(t)
            continue
        kept: list[Segment] = []
        for seg in t.segments:
            if seg.start_ms < start:
                kept.append(Segment(seg.start_ms, min(seg.end_ms, start), seg.state))
            if seg.end_ms > stop:
                kept.append(Segment(max(seg.start_ms, stop), seg.end_ms, seg.state))
        if not placed:
            kept.append(Segment(start, stop, state))
            placed = True
        out.append(AssetTimeline(asset, tuple(sorted(kept, key=lambda s: s.start_ms))))
    return out


def period_incident_ids(inputs: SlaInputs, period: Period, as_of_ms: int) -> set[str]:
    """The incidents of `inputs` the report of `period` would list (scope aside), for `mark_report`."""
    return {i.id for i in inputs.incidents if _in_period(i, period, as_of_ms)}


def as_of(note: DisputeNote, as_of_ms: int) -> DisputeNote | None:
    """The dispute as known at `as_of_ms`: None before it was opened, open before it was settled."""
    if note.opened_ms > as_of_ms:
        return None
    if note.settled_ms is not None and note.settled_ms > as_of_ms:
        return dataclasses.replace(
            note, state="open", outcome=None, settled_value=None, settle_reason=None, settled_by=None, settled_ms=None
        )
    return note


def mark_report(
    report: ContractReport, notes: Iterable[DisputeNote], period_incidents: Iterable[str]
) -> ContractReport:
    """`report` with its disputes: those about its incidents or about `period_incidents` (the period's
    incidents before settlements applied, so an excluded incident's dispute still shows)."""
    ids = {i.id for i in report.incidents} | set(period_incidents)
    known = [n for n in (as_of(n, report.as_of_ms) for n in notes) if n is not None and n.incident_id in ids]
    known.sort(key=lambda n: (n.opened_ms, n.id))
    open_of: dict[str, list[str]] = {}
    for n in known:
        if n.state == "open":
            open_of.setdefault(n.incident_id, []).append(n.id)
    incidents = tuple(dataclasses.replace(i, disputed=tuple(open_of.get(i.id, ()))) for i in report.incidents)
    return dataclasses.replace(report, incidents=incidents, disputes=tuple(known))


def settlement(note: DisputeNote) -> Settlement | None:
    """The settlement a settled dispute makes (None while open)."""
    if note.state != "settled" or note.settled_ms is None or note.outcome not in OUTCOMES:
        return None
    outcome = next(o for o in OUTCOMES if o == note.outcome)
    return Settlement(note.id, note.incident_id, note.field, outcome, note.settled_value, note.settled_ms)
