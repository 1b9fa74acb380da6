"""Inputs of the SLA engine: what was measured and recorded, as frozen dataclasses (times in ms, UTC).

Time not covered by any segment of an asset's timeline is "not observed", exactly like an UNKNOWN
segment or a monitoring gap; the contract's monitoring-gap policy decides what it counts as.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from linewarden.domain import Criticality, Severity, State


@dataclass(frozen=True)
class Segment:
    """The asset was in `state` during [start_ms, end_ms)."""

    start_ms: int
    end_ms: int
    state: State


@dataclass(frozen=True)
class StateChange:
    at_ms: int
    state: State


@dataclass(frozen=True)
class AssetTimeline:
    """State history of one asset. Where segments overlap the worst observation wins
    (DOWN over DEGRADED over UP over UNKNOWN)."""

    asset: str
    segments: tuple[Segment, ...]

    @classmethod
    def from_changes(cls, asset: str, changes: Iterable[StateChange], end_ms: int) -> AssetTimeline:
        """Each change holds until the next one; the last holds until `end_ms`."""
        ordered = sorted(changes, key=lambda c: c.at_ms)
        ends = [c.at_ms for c in ordered[1:]] + [end_ms]
        pairs = zip(ordered, ends, strict=True)
        return cls(asset, tuple(Segment(c.at_ms, e, c.state) for c, e in pairs if e > c.at_ms))


@dataclass(frozen=True)
class MonitoringGap:
    """Nothing trustworthy was observed for `assets` (all assets when empty) during [start_ms, end_ms):
    agent dead, collector offline, data lost. It overrides whatever the timelines say."""

    start_ms: int
    end_ms: int
    assets: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class ConfigurationFault:
    """A target of `asset` could not be measured during [start_ms, end_ms) because of how the agent is
    configured (a `config.*` cause while it had never been seen working). Where the asset's state is UNKNOWN
    then, that time is never the vendor's: it is excluded whatever the monitoring-gap policy."""

    asset: str
    start_ms: int
    end_ms: int
    cause: str = ""


@dataclass(frozen=True)
class MaintenanceWindow:
    """An approved maintenance or change window for the named assets and services."""

    id: str
    start_ms: int
    end_ms: int
    announced_at_ms: int
    announced_by: str
    assets: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    kind: Literal["maintenance", "change"] = "maintenance"
    cancelled: bool = False
    reason: str = ""
    back_dated: bool = False  # announced earlier than the collector received it (admin or import)
    cancelled_at_ms: int | None = None  # when it was cancelled (None with `cancelled`: before it started)


@dataclass(frozen=True)
class Pause:
    """The ticket waited on the plant during [start_ms, end_ms); `end_ms` None: still paused."""

    start_ms: int
    end_ms: int | None = None


@dataclass(frozen=True)
class Incident:
    """An incident and its ticket record.

    `severity` is the edge (measured) severity and governs targets and credits; `vendor_severity` is the
    vendor's triage, kept and reported. `notified_at_ms` is when the ticket was raised (None: never raised,
    e.g. inside a maintenance window). `restored_at_ms` is the measured restoration (UP and stable).
    """

    id: str
    asset: str
    severity: Severity
    reason: str
    opened_at_ms: int
    notified_at_ms: int | None = None
    acknowledged_at_ms: int | None = None
    pauses: tuple[Pause, ...] = ()
    restored_at_ms: int | None = None
    workaround_accepted_at_ms: int | None = None
    resolution_claimed_at_ms: int | None = None
    rca_received_at_ms: int | None = None
    vendor_severity: Severity | None = None
    cause: str = ""  # the stable cause code; "" when the incident's events carried none


@dataclass(frozen=True)
class ChangeDetection:
    asset: str
    at_ms: int
    what: str


@dataclass(frozen=True)
class SlaInputs:
    """Everything measured and recorded for one contract. Incidents should include the 30 days before
    the period, so recurrence can see an earlier incident. `criticality` maps asset → class, for
    asset-class scope lines."""

    timelines: tuple[AssetTimeline, ...] = ()
    gaps: tuple[MonitoringGap, ...] = ()
    windows: tuple[MaintenanceWindow, ...] = ()
    incidents: tuple[Incident, ...] = ()
    changes: tuple[ChangeDetection, ...] = ()
    criticality: Mapping[str, Criticality] = field(default_factory=dict)
    configuration: tuple[ConfigurationFault, ...] = ()
