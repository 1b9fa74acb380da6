"""Per-line and per-incident results, shared by the scorecard and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from linewarden.domain import Severity
from linewarden.sla.clocks import Clock
from linewarden.sla.rca import RcaResult
from linewarden.sla.uptime import Measure

LineKind = Literal["service", "asset", "asset_class"]
# measured: uptime_pct and met hold; not_observed: nothing observed outside maintenance (no uptime, no
# credit); insufficient_data: observed share below the line's min_observed_pct (uptime shown, no met, no credit)
UptimeStatus = Literal["measured", "not_observed", "insufficient_data"]
HIDDEN = {"json": False}


@dataclass(frozen=True)
class UptimeLine:
    scope: str
    kind: LineKind
    assets: tuple[str, ...]
    coverage: str
    target_pct: Decimal
    degraded_weight: Decimal
    min_observed_pct: Decimal | None
    measure: Measure
    observed_ms: int
    observed_pct: Decimal | None
    uptime_pct: Decimal | None
    met: bool | None
    status: UptimeStatus
    exact_uptime: Fraction | None = field(metadata=HIDDEN)


@dataclass(frozen=True)
class IncidentResult:
    id: str
    asset: str
    reason: str
    severity: Severity
    vendor_severity: Severity | None
    opened_ms: int
    notified_ms: int | None
    acknowledged_ms: int | None
    restored_ms: int | None
    workaround_accepted_ms: int | None
    resolution_claimed_ms: int | None
    response: Clock | None
    resolution: Clock | None
    recurring: bool
    rca: RcaResult | None
    disputed: tuple[str, ...] = ()  # ids of the disputes about this incident not settled as of the report
    planned: bool = False  # opened inside an approved window and never raised: no fault, not in recurrence


@dataclass(frozen=True)
class DisputeNote:
    """A dispute as a report shows it, as of the report's time: `state` "open" until settled, then
    "settled" with its `outcome` (accepted, amended, rejected) and `settled_value`. Values are ms for times,
    S1–S4 for severity, true/false for excluded, text for cause."""

    id: str
    incident_id: str
    field: str
    category: str
    state: Literal["open", "settled"]
    outcome: str | None
    disputed_value: int | str | bool | None
    proposed_value: int | str | bool | None
    settled_value: int | str | bool | None
    reason: str
    settle_reason: str | None
    opened_by: str
    opened_ms: int
    settled_by: str | None
    settled_ms: int | None


ExclusionReason = Literal["maintenance", "monitoring_gap", "configuration"]


@dataclass(frozen=True)
class Exclusion:
    scope: str
    asset: str | None  # the asset, for asset-class lines
    reason: ExclusionReason
    start_ms: int
    end_ms: int
    ms: int  # covered time excluded inside [start, end)
    windows: tuple[str, ...]
    back_dated: tuple[str, ...] = ()  # those of `windows` announced earlier than the collector received them


@dataclass(frozen=True)
class ShortNotice:
    """A window announced less than the notice lead time ahead: not excluded, its downtime counts."""

    scope: str
    window: str
    start_ms: int
    end_ms: int
    announced_at_ms: int
    notice_given_ms: int
    notice_required_ms: int
    downtime_ms: Decimal  # the line's downtime inside the window's covered time
    back_dated: bool = False


@dataclass(frozen=True)
class UnapprovedChange:
    asset: str
    at_ms: int
    what: str
