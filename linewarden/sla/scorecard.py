"""Vendor scorecard for one period and its 0–100 score.

Score = uptime (40) + response and resolution (30) + recurrence (10) + RCA (10) + changes (10):

- uptime: 40 × the mean over decided uptime lines of each line's attainment: 1 when the line met its
  target, else allowed / actual downtime share, i.e. (100 − target) / (100 − uptime), 0 when the target
  is 100. (Twice the downtime the target allows earns half.) Lines without a decided figure (met None:
  not observed, insufficient data) count neither way. No decided lines: full marks.
- response and resolution: 30 × met / decided, over both clocks of every incident in the period
  (undecided clocks do not count). Nothing decided: full marks.
- recurrence: 10 × (1 − recurring / incidents, planned stops left out). No incidents: full marks.
- RCA: 10 × on time / (on time + late). None on time or late: full marks.
- changes: 10 − 5 per unapproved change, not below 0.
The patch policy's and remote access's counts (untested patches, version changes outside an approved change
window, rollbacks, flagged remote sessions) are shown beside the score and do not change it.
Each part and the score are rounded to 2 places, ROUND_HALF_UP, from the exact figures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from linewarden.domain import Severity
from linewarden.sla.clocks import Clock
from linewarden.sla.patch_policy import PatchChange
from linewarden.sla.remote_sessions import JudgedSession
from linewarden.sla.results import IncidentResult, UptimeLine
from linewarden.sla.rounding import mean_ms, pct


@dataclass(frozen=True)
class SeverityStats:
    severity: Severity
    incidents: int
    response_met: int
    response_breached: int
    response_compliance_pct: Decimal | None
    resolution_met: int
    resolution_breached: int
    resolution_compliance_pct: Decimal | None


@dataclass(frozen=True)
class ScoreParts:
    uptime: Decimal
    response_resolution: Decimal
    recurrence: Decimal
    rca: Decimal
    changes: Decimal


@dataclass(frozen=True)
class Scorecard:
    uptime_lines_met: int
    uptime_lines: int
    uptime_lines_undecided: int
    by_severity: tuple[SeverityStats, ...]
    mtta_ms: int | None
    mttr_ms: int | None
    incidents: int
    recurring: int
    recurrence_rate_pct: Decimal
    rca_on_time: int
    rca_late: int
    rca_pending: int
    rca_on_time_pct: Decimal | None
    unapproved_changes: int
    credits_owed: Decimal
    score: Decimal
    score_parts: ScoreParts
    # Observed conduct, counted beside the score (not in it): set by the collector (see `with_conduct`).
    untested_patches: int = 0
    unapproved_version_changes: int = 0
    rollbacks: int = 0
    flagged_remote_sessions: int = 0
    planned_stops: int = 0  # incidents opened inside a timely window, never raised: not in the recurrence rate


def _ratio(num: int, den: int) -> Fraction | None:
    return Fraction(num, den) if den else None


def _compliance(clocks: list[Clock | None]) -> tuple[int, int]:
    met = sum(1 for c in clocks if c is not None and c.met is True)
    breached = sum(1 for c in clocks if c is not None and c.met is False)
    return met, breached


def _attainment(line: UptimeLine) -> Fraction:
    if line.met or line.exact_uptime is None:
        return Fraction(1)
    allowed = 100 - Fraction(line.target_pct)
    return allowed / (100 - line.exact_uptime) if allowed > 0 else Fraction(0)


def _severity_stats(severity: Severity, incidents: list[IncidentResult]) -> SeverityStats:
    mine = [i for i in incidents if i.severity == severity]
    r_met, r_breached = _compliance([i.response for i in mine])
    s_met, s_breached = _compliance([i.resolution for i in mine])
    r_ratio, s_ratio = _ratio(r_met * 100, r_met + r_breached), _ratio(s_met * 100, s_met + s_breached)
    return SeverityStats(
        severity,
        len(mine),
        r_met,
        r_breached,
        None if r_ratio is None else pct(r_ratio),
        s_met,
        s_breached,
        None if s_ratio is None else pct(s_ratio),
    )


def with_conduct(card: Scorecard, changes: Sequence[PatchChange], sessions: Sequence[JudgedSession]) -> Scorecard:
    return dataclasses.replace(
        card,
        untested_patches=sum(1 for c in changes if "untested_patch" in c.findings),
        unapproved_version_changes=sum(1 for c in changes if "unapproved_change" in c.findings),
        rollbacks=sum(1 for c in changes if c.rollback),
        flagged_remote_sessions=sum(1 for s in sessions if s.flagged),
    )


def build_scorecard(
    lines: list[UptimeLine], incidents: list[IncidentResult], unapproved_changes: int, credits_owed: Decimal
) -> Scorecard:
    stopped_response = [i.response.elapsed_ms for i in incidents if i.response is not None and i.response.stopped]
    stopped_resolution = [
        i.resolution.elapsed_ms for i in incidents if i.resolution is not None and i.resolution.stopped
    ]
    met, breached = _compliance([c for i in incidents for c in (i.response, i.resolution)])
    recurring = sum(1 for i in incidents if i.recurring)
    faults = sum(1 for i in incidents if not i.planned)  # recurrence's base: planned stops are no fault
    rcas = [i.rca for i in incidents if i.rca is not None]
    on_time = sum(1 for r in rcas if r.status == "on_time")
    late = sum(1 for r in rcas if r.status == "late")

    decided = [line for line in lines if line.met is not None]
    uptime_share = sum((_attainment(x) for x in decided), Fraction(0)) / len(decided) if decided else Fraction(1)
    clock_share = _ratio(met, met + breached)
    recurrence_share = 1 - (_ratio(recurring, faults) or Fraction(0))
    rca_share = _ratio(on_time, on_time + late)
    parts = (
        40 * uptime_share,
        30 * (Fraction(1) if clock_share is None else clock_share),
        10 * recurrence_share,
        10 * (Fraction(1) if rca_share is None else rca_share),
        Fraction(max(0, 10 - 5 * unapproved_changes)),
    )
    rca_ratio = _ratio(on_time * 100, on_time + late)
    return Scorecard(
        uptime_lines_met=sum(1 for line in lines if line.met),
        uptime_lines=len(lines),
        uptime_lines_undecided=len(lines) - len(decided),
        by_severity=tuple(_severity_stats(s, incidents) for s in Severity),
        mtta_ms=mean_ms(stopped_response),
        mttr_ms=mean_ms(stopped_resolution),
        incidents=len(incidents),
        recurring=recurring,
        recurrence_rate_pct=pct(_ratio(recurring * 100, faults) or Fraction(0)),
        rca_on_time=on_time,
        rca_late=late,
        rca_pending=sum(1 for r in rcas if r.status in ("pending", "not_due")),
        rca_on_time_pct=None if rca_ratio is None else pct(rca_ratio),
        unapproved_changes=unapproved_changes,
        credits_owed=credits_owed,
        score=pct(sum(parts, Fraction(0))),
        score_parts=ScoreParts(*(pct(p) for p in parts)),
        planned_stops=len(incidents) - faults,
    )
