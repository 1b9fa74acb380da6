"""One contract's SLA report for one period: `build_report(contract, period, inputs, calendars)`.

Scope. A contract's assets in scope are `scope.assets`, the components of `scope.services` and the assets
whose criticality is in `scope.asset_classes`, less `scope.exclude_assets`. Incidents and changes outside
that set are ignored. A service's state always uses all of its components as defined (exclude_assets
does not change a service's rule). An uptime line's `scope` names a service of the contract, else a
criticality (an asset class: the line adds up asset-time over every asset of that class in scope),
else an asset.

Windows. A window in force (changes.in_force: announced by `as_of`, a cancellation cutting it short only
from the moment it was made) applies to an asset when it names the asset or a service it belongs to,
and to a service line when it names the service or any of its components. It is excluded when announced
at least `maintenance.notice` before its start, else listed under `short_notice`.

Incidents. An incident belongs to the period in which it was notified (ticket raised), or opened when
not notified by `as_of`. Only a notified incident has clocks and can owe an RCA (rca.py).

As of. Nothing after `as_of_ms` (default: the period's end) is known: uptime is measured over the
period's part before it (the period is `partial` when `as_of_ms` is before its end), windows announced
later do not exist yet, later events are shown as null and clocks are measured up to it (see clocks.py).
An `as_of_ms` after the period's end lets clocks and RCA deadlines of the period's incidents run on;
uptime stays the period's.

Uptime lines. `status` "not_observed" (no observed time outside maintenance: uptime_pct and met null),
"insufficient_data" (observed share below the line's `min_observed_pct`: met null) or "measured"; only
a measured line earns credits or scorecard points either way (see uptime.py).

JSON (`to_dict` / `to_json`), schema "linewarden.sla-report/2": times are integers, ms since the epoch
UTC; durations integers in ms; money, percentages and weights are decimal strings ("99.9500"); enums
their value; absent values null. Top level: schema, contract_id, vendor, currency, fee, timezone, period
{label, start_ms, end_ms}, as_of_ms, partial, uptime[], incidents[], exclusions[], short_notice[],
unapproved_changes[], credits {lines[], subtotal, cap, capped, total}, scorecard {...}, disputes[],
patch_changes[] (PatchChange, patch_policy.py), remote_sessions[] (JudgedSession, remote_sessions.py).
An uptime line is {scope, kind, assets, coverage, target_pct, degraded_weight, min_observed_pct,
covered_ms, maintenance_ms, gap_ms, excluded_ms, down_ms, degraded_ms, downtime_ms, observed_ms,
observed_pct, uptime_pct, met, status}. An incident is {id, asset,
reason, severity, vendor_severity, opened_ms, notified_ms, acknowledged_ms, restored_ms,
workaround_accepted_ms, resolution_claimed_ms, response, resolution, recurring, rca, disputed, planned}, where
response and resolution are {elapsed_ms, target_ms, stopped, met, left_ms} or null, rca {incident_id,
due_ms, received_ms, status} or null, disputed the ids of its disputes not settled as of the report and
planned true for a planned stop (opened inside a timely window, never raised: left out of recurrence).
A dispute is a DisputeNote (results.py). Field names and meanings are those of the dataclasses below and in results.py,
scorecard.py and credits.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from typing import Any

from linewarden.calendar import ALWAYS_ID, Calendar
from linewarden.config.contract import ContractConfig, ServiceDef, UptimeTarget
from linewarden.domain import Criticality, State
from linewarden.errors import ConfigError
from linewarden.intervals import Interval, clip, intersect, normalize, subtract, total, union
from linewarden.sla.changes import in_force, in_window, is_approved, window_names
from linewarden.sla.clocks import resolution_stop, run_clock
from linewarden.sla.coverage import CoverageCalendar
from linewarden.sla.credits import Breach, CreditSummary, UptimeOutcome, credit_summary
from linewarden.sla.models import AssetTimeline, Incident, MaintenanceWindow, SlaInputs
from linewarden.sla.patch_policy import PatchChange
from linewarden.sla.periods import Period
from linewarden.sla.rca import rca_result
from linewarden.sla.recurrence import recurring_ids
from linewarden.sla.remote_sessions import JudgedSession
from linewarden.sla.results import (
    DisputeNote,
    Exclusion,
    ExclusionReason,
    IncidentResult,
    LineKind,
    ShortNotice,
    UnapprovedChange,
    UptimeLine,
    UptimeStatus,
)
from linewarden.sla.rounding import observed_pct, uptime_pct
from linewarden.sla.scorecard import Scorecard, build_scorecard
from linewarden.sla.services import combine, required
from linewarden.sla.states import StateMap, asset_states, gap_intervals
from linewarden.sla.uptime import Measure, measure

SCHEMA = "linewarden.sla-report/2"
_CLASSES = {c.value for c in Criticality}


@dataclass(frozen=True)
class ContractReport:
    contract_id: str
    vendor: str
    currency: str
    fee: Decimal
    timezone: str
    period: Period
    as_of_ms: int
    partial: bool
    uptime: tuple[UptimeLine, ...]
    incidents: tuple[IncidentResult, ...]
    exclusions: tuple[Exclusion, ...]
    short_notice: tuple[ShortNotice, ...]
    unapproved_changes: tuple[UnapprovedChange, ...]
    credits: CreditSummary
    scorecard: Scorecard
    disputes: tuple[DisputeNote, ...] = ()  # see disputes.py: added by `mark_report`
    # Observed conduct (patch_policy.py, remote_sessions.py): added by the collector from what it recorded.
    patch_changes: tuple[PatchChange, ...] = ()
    remote_sessions: tuple[JudgedSession, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": SCHEMA}
        out.update(_jsonable(self))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            if f.metadata.get("json", True) is False:
                continue
            item = getattr(value, f.name)
            if isinstance(item, Measure):
                out.update(_jsonable(item))
            else:
                out[f.name] = _jsonable(item)
        return out
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def scope_assets(contract: ContractConfig, criticality: Mapping[str, Criticality]) -> set[str]:
    """The contract's assets in scope (see the module's "Scope")."""
    services = {s.id: s for s in contract.services}
    classes = {c.value for c in contract.scope.asset_classes}
    in_scope = set(contract.scope.assets)
    for sid in contract.scope.services:
        in_scope.update(services[sid].components)
    in_scope.update(a for a, c in criticality.items() if c.value in classes)
    return in_scope - set(contract.scope.exclude_assets)


class _Context:
    """What every line and incident of one report needs: resolved scope, calendars and indexes."""

    def __init__(
        self,
        contract: ContractConfig,
        period: Period,
        inputs: SlaInputs,
        calendars: Mapping[str, CoverageCalendar],
        as_of_ms: int,
    ) -> None:
        self.contract = contract
        self.period = period
        self.end_ms = max(period.start_ms, min(period.end_ms, as_of_ms))  # uptime is measured up to here
        self.inputs = inputs
        self.calendars = calendars
        self.services = {s.id: s for s in contract.services}
        services_of: dict[str, set[str]] = {}
        for s in contract.services:
            for asset in s.components:
                services_of.setdefault(asset, set()).add(s.id)
        self.services_of = {a: frozenset(ids) for a, ids in services_of.items()}
        self.excluded = set(contract.scope.exclude_assets)
        self.in_scope = scope_assets(contract, inputs.criticality)
        timelines: dict[str, list[AssetTimeline]] = {}
        for t in inputs.timelines:
            timelines.setdefault(t.asset, []).append(t)
        self.timelines = {a: AssetTimeline(a, tuple(s for t in ts for s in t.segments)) for a, ts in timelines.items()}
        self.live_windows = [w for w in (in_force(w, as_of_ms) for w in inputs.windows) if w is not None]
        self.notice_ms = int(contract.maintenance.notice.total_seconds() * 1000)

    def calendar(self, name: str, key: str) -> CoverageCalendar:
        if name in self.calendars:
            return self.calendars[name]
        if name == ALWAYS_ID:
            return Calendar.always(self.contract.contract.timezone)
        known = ", ".join(sorted(self.calendars)) or "none"
        raise ConfigError(f"contract {self.contract.contract.id}", key, f"no calendar {name!r} (known: {known})")

    def excused(self, assets: tuple[str, ...] | list[str]) -> list[Interval]:
        """Where these assets' targets could not be measured because of the agent's configuration, less
        recorded monitoring gaps (an agent that was not watching is a gap, whatever its config)."""
        out: list[Interval] = []
        for asset in set(assets):
            faults = normalize((f.start_ms, f.end_ms) for f in self.inputs.configuration if f.asset == asset)
            if faults:
                out += subtract(faults, gap_intervals(asset, self.inputs.gaps))
        return clip(normalize(out), self.period.start_ms, self.end_ms)

    def asset_states(self, asset: str) -> StateMap:
        gaps = gap_intervals(asset, self.inputs.gaps)
        return asset_states(self.timelines.get(asset), gaps, self.period.start_ms, self.end_ms)

    def service_states(self, service: ServiceDef) -> StateMap:
        parts = [self.asset_states(a) for a in service.components]
        return combine(parts, required(service), self.period.start_ms, self.end_ms)

    def windows_for_asset(self, asset: str) -> list[MaintenanceWindow]:
        return [w for w in self.live_windows if window_names(w, asset, self.services_of)]

    def windows_for_service(self, service: ServiceDef) -> list[MaintenanceWindow]:
        names = {service.id}
        return [
            w
            for w in self.live_windows
            if names & set(w.services) or any(window_names(w, a, self.services_of) for a in service.components)
        ]

    def timely(self, window: MaintenanceWindow) -> bool:
        return window.start_ms - window.announced_at_ms >= self.notice_ms


@dataclass(frozen=True)
class _Part:
    """One measured unit of a line: the service or asset itself, or one asset of an asset class."""

    asset: str | None
    states: StateMap
    windows: list[MaintenanceWindow]
    excused: list[Interval]  # configuration faults (see uptime.measure)


def _line_parts(ctx: _Context, target: UptimeTarget) -> tuple[LineKind, tuple[str, ...], list[_Part]]:
    if target.scope in ctx.services:
        service = ctx.services[target.scope]
        states, windows = ctx.service_states(service), ctx.windows_for_service(service)
        part = _Part(None, states, windows, ctx.excused(service.components))
        return "service", tuple(service.components), [part]
    if target.scope in _CLASSES:
        assets = tuple(
            sorted(a for a, c in ctx.inputs.criticality.items() if c.value == target.scope and a in ctx.in_scope)
        )
        parts = [_Part(a, ctx.asset_states(a), ctx.windows_for_asset(a), ctx.excused([a])) for a in assets]
        return "asset_class", assets, parts
    scope = target.scope
    return "asset", (scope,), [_Part(None, ctx.asset_states(scope), ctx.windows_for_asset(scope), ctx.excused([scope]))]


def _uptime_line(
    ctx: _Context, index: int, target: UptimeTarget
) -> tuple[UptimeLine, list[Exclusion], list[ShortNotice]]:
    start, end = ctx.period.start_ms, ctx.end_ms
    policy, weight = ctx.contract.maintenance.monitoring_gaps, target.degraded_weight
    calendar = ctx.calendar(target.coverage, f"uptime[{index}].coverage")
    covered = normalize(calendar.open_intervals(start, end))
    kind, assets, parts = _line_parts(ctx, target)
    total_measure = Measure()
    exclusions: list[Exclusion] = []
    short: list[ShortNotice] = []
    for part in parts:
        timely = [w for w in part.windows if ctx.timely(w)]
        timely_ivs = union((w.start_ms, w.end_ms) for w in timely)
        total_measure = total_measure + measure(part.states, covered, timely_ivs, policy, weight, part.excused)
        for s, e in clip(timely_ivs, start, end):
            ms = total(intersect(covered, [(s, e)]))
            if ms:
                used = [w for w in timely if w.start_ms < e and w.end_ms > s]
                ids, late = tuple(w.id for w in used), tuple(w.id for w in used if w.back_dated)
                exclusions.append(Exclusion(target.scope, part.asset, "maintenance", s, e, ms, ids, late))
        counted = subtract(covered, timely_ivs)
        configuration = intersect(part.states[State.UNKNOWN], part.excused)
        gaps = subtract(part.states[State.UNKNOWN], configuration) if policy == "exclude" else []
        kinds: tuple[tuple[ExclusionReason, list[Interval]], ...] = (
            ("configuration", configuration),
            ("monitoring_gap", gaps),
        )
        for reason, ivs in kinds:
            for s, e in ivs:
                ms = total(intersect(counted, [(s, e)]))
                if ms:
                    exclusions.append(Exclusion(target.scope, part.asset, reason, s, e, ms, ()))
        for w in part.windows:
            if ctx.timely(w) or w.end_ms <= start or w.start_ms >= end:
                continue
            inside = intersect(covered, [(w.start_ms, w.end_ms)])
            down = measure(part.states, inside, timely_ivs, policy, weight, part.excused).downtime_ms
            short.append(
                ShortNotice(
                    target.scope,
                    w.id,
                    w.start_ms,
                    w.end_ms,
                    w.announced_at_ms,
                    w.start_ms - w.announced_at_ms,
                    ctx.notice_ms,
                    down,
                    w.back_dated,
                )
            )
    return _decide(target, kind, assets, total_measure), exclusions, short


def _decide(target: UptimeTarget, kind: LineKind, assets: tuple[str, ...], m: Measure) -> UptimeLine:
    exact, share = m.uptime, m.observed_share
    status: UptimeStatus = "measured"
    if exact is None:
        status = "not_observed"
    elif target.min_observed_pct is not None and share is not None and share < Fraction(target.min_observed_pct):
        status = "insufficient_data"
    return UptimeLine(
        scope=target.scope,
        kind=kind,
        assets=assets,
        coverage=target.coverage,
        target_pct=target.target_pct,
        degraded_weight=target.degraded_weight,
        min_observed_pct=target.min_observed_pct,
        measure=m,
        observed_ms=m.observed_ms,
        observed_pct=None if share is None else observed_pct(share),
        uptime_pct=None if exact is None else uptime_pct(exact),
        met=exact >= Fraction(target.target_pct) if exact is not None and status == "measured" else None,
        status=status,
        exact_uptime=exact,
    )


def _known(at_ms: int | None, as_of_ms: int) -> int | None:
    return at_ms if at_ms is not None and at_ms <= as_of_ms else None


def _incident(ctx: _Context, incident: Incident, recurring: bool, as_of_ms: int, planned: bool) -> IncidentResult:
    support = ctx.contract.support
    calendar = ctx.calendar(support.coverage, "support.coverage")
    target = support.targets.for_severity(incident.severity)
    pauses = incident.pauses if support.pause_allowed else ()
    response = resolution = None
    notified = _known(incident.notified_at_ms, as_of_ms)
    if notified is not None:
        response_target = None if target is None else int(target.response.total_seconds() * 1000)
        resolution_target = None if target is None else int(target.resolution.total_seconds() * 1000)
        start = notified
        response = run_clock(calendar, start, incident.acknowledged_at_ms, pauses, as_of_ms, response_target)
        resolution = run_clock(calendar, start, resolution_stop(incident), pauses, as_of_ms, resolution_target)
    return IncidentResult(
        id=incident.id,
        asset=incident.asset,
        reason=incident.reason,
        severity=incident.severity,
        vendor_severity=incident.vendor_severity,
        opened_ms=incident.opened_at_ms,
        notified_ms=notified,
        acknowledged_ms=_known(incident.acknowledged_at_ms, as_of_ms),
        restored_ms=_known(incident.restored_at_ms, as_of_ms),
        workaround_accepted_ms=_known(incident.workaround_accepted_at_ms, as_of_ms),
        resolution_claimed_ms=_known(incident.resolution_claimed_at_ms, as_of_ms),
        response=response,
        resolution=resolution,
        recurring=recurring,
        rca=rca_result(incident, ctx.contract.rca, calendar, as_of_ms),
        planned=planned,
    )


def _in_period(incident: Incident, period: Period, as_of_ms: int) -> bool:
    """Raised in the period, or opened in it when not raised by `as_of_ms`; known by `as_of_ms` either way."""
    notified = _known(incident.notified_at_ms, as_of_ms)
    at = notified if notified is not None else incident.opened_at_ms
    return period.start_ms <= at < period.end_ms and at <= as_of_ms


def build_report(
    contract: ContractConfig,
    period: Period,
    inputs: SlaInputs,
    calendars: Mapping[str, CoverageCalendar],
    as_of_ms: int | None = None,
) -> ContractReport:
    """`calendars` maps names to calendars: "production" for the production calendar, calendar ids for
    named coverage calendars; "24x7" defaults to `Calendar.always` in the contract's time zone.
    Raises ConfigError when the contract names a calendar that is not given."""
    as_of = period.end_ms if as_of_ms is None else as_of_ms
    ctx = _Context(contract, period, inputs, calendars, as_of)
    lines: list[UptimeLine] = []
    exclusions: list[Exclusion] = []
    short: list[ShortNotice] = []
    for i, target in enumerate(contract.uptime):
        line, excl, sn = _uptime_line(ctx, i, target)
        lines.append(line)
        exclusions.extend(excl)
        short.extend(sn)

    scoped = [i for i in inputs.incidents if i.asset in ctx.in_scope]
    # as the router decides: opened inside a timely window, so never raised
    timely = [w for w in ctx.live_windows if ctx.timely(w)]
    planned = {
        i.id
        for i in scoped
        if _known(i.notified_at_ms, as_of) is None and in_window(i.asset, i.opened_at_ms, timely, ctx.services_of)
    }
    recurring = recurring_ids(scoped, as_of, planned)
    incidents = [
        _incident(ctx, i, i.id in recurring, as_of, i.id in planned)
        for i in sorted(scoped, key=lambda i: (i.notified_at_ms or i.opened_at_ms, i.id))
        if _in_period(i, period, as_of)
    ]
    changes = [
        UnapprovedChange(c.asset, c.at_ms, c.what)
        for c in sorted(inputs.changes, key=lambda c: (c.at_ms, c.asset))
        if c.asset in ctx.in_scope
        and period.start_ms <= c.at_ms < period.end_ms
        and c.at_ms <= as_of
        and not is_approved(c, ctx.live_windows, ctx.services_of)
    ]
    breaches = [Breach(r.id, r.severity, "response") for r in incidents if r.response and r.response.met is False]
    breaches += [
        Breach(r.id, r.severity, "resolution") for r in incidents if r.resolution and r.resolution.met is False
    ]
    fee = contract.contract.fee_per_period
    outcomes = [UptimeOutcome(line.scope, line.exact_uptime, line.met) for line in lines]
    credits = credit_summary(outcomes, breaches, contract.credits, fee)
    return ContractReport(
        contract_id=contract.contract.id,
        vendor=contract.contract.vendor,
        currency=contract.contract.currency,
        fee=fee,
        timezone=contract.contract.timezone,
        period=period,
        as_of_ms=as_of,
        partial=as_of < period.end_ms,
        uptime=tuple(lines),
        incidents=tuple(incidents),
        exclusions=tuple(exclusions),
        short_notice=tuple(short),
        unapproved_changes=tuple(changes),
        credits=credits,
        scorecard=build_scorecard(lines, incidents, len(changes), credits.total),
    )
