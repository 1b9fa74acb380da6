"""What the store returns: frozen rows, times as int ms since the Unix epoch (UTC)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AgentRow:
    site: str
    agent: str
    epoch: str
    boot: str
    version: str
    config_hash: str
    heartbeat_interval_s: int
    birth_at: int
    birth_received_at: int
    last_seen: int
    last_heartbeat: int | None
    last_heartbeat_received_at: int | None
    death_at: int | None
    death_reason: str | None
    skew_ms: int | None
    skew_flagged: bool
    boot_seq: int | None = None
    outbox_fault: str | None = None  # the agent's outbox cannot be written (its latest birth says why)
    # What the latest heartbeat said of the agent's outbox (None: not said; oldest None with a depth: empty).
    outbox_depth: int | None = None
    oldest_unacked_at: int | None = None


@dataclass(frozen=True)
class HeldBatch:
    """An event batch held until its boot's birth arrives: its payload as received, and when."""

    payload: bytes
    received_at: int


@dataclass(frozen=True)
class TargetRow:
    """One probed target as the agent's latest birth described it: the asset/target registry."""

    site: str
    agent: str
    target: str
    kind: str
    asset: str
    criticality: str
    first_seen: int
    last_seen: int


@dataclass(frozen=True)
class StateChangeRow:
    site: str
    agent: str
    target: str
    asset: str
    from_state: str
    to_state: str
    reason: str
    at: int
    cause: str | None = None


@dataclass(frozen=True)
class GapRow:
    """A monitoring gap: the agent was not watching from `start_at` to `end_at` (None: still open)."""

    site: str
    agent: str
    start_at: int
    end_at: int | None
    reason: str
    boot: str


@dataclass(frozen=True)
class ChangeRow:
    site: str
    agent: str
    target: str
    asset: str
    what: str
    old_value: str | None
    new_value: str
    at: int


@dataclass(frozen=True)
class MaintenanceWindowRow:
    id: str
    site: str
    kind: str
    start_at: int
    end_at: int
    assets: tuple[str, ...]
    services: tuple[str, ...]
    announced_at: int
    announced_by: str
    reason: str
    cancelled_at: int | None
    whole_site: bool = False
    lines: tuple[str, ...] = ()  # agents: each selects the assets that agent watches
    asset_classes: tuple[str, ...] = ()
    recorded_at: int | None = None  # when the collector received the announcement (None: not known)
    backdate_reason: str = ""

    @property
    def back_dated(self) -> bool:
        """Announced earlier than the collector received it (an admin's or an import's word for it)."""
        return self.recorded_at is not None and self.announced_at < self.recorded_at


@dataclass(frozen=True)
class SeverityStep:
    at: int
    severity: str
    state: str
    reason: str
    in_production: bool | None


@dataclass(frozen=True)
class TicketRecordRow:
    incident: str
    contract: str  # '' when the record names no contract (imported history)
    kind: str
    at: int
    actor: str
    details: dict[str, object]
    source: str


@dataclass(frozen=True)
class IncidentRow:
    id: str
    site: str
    agent: str
    kind: str
    target: str | None
    asset: str | None
    criticality: str | None
    severity: str | None
    """Severity when opened; later steps are in `severity_history`."""
    reason: str | None
    opened_at: int | None
    resolved_at: int | None
    resolve_reason: str | None
    targets: tuple[str, ...]
    severity_history: tuple[SeverityStep, ...] = ()
    tickets: tuple[TicketRecordRow, ...] = ()
    cause: str | None = None


@dataclass(frozen=True)
class DeadLetterRow:
    id: int
    topic: str
    site: str | None
    agent: str | None
    payload: str
    reason: str
    received_at: int


@dataclass(frozen=True)
class PeriodData:
    """Everything the SLA engine needs for one period [start, end)."""

    start: int
    end: int
    state_changes: tuple[StateChangeRow, ...]
    """Per target: its last change before `start` (the state it entered the period in), then all in it."""
    gaps: tuple[GapRow, ...]
    maintenance_windows: tuple[MaintenanceWindowRow, ...]
    incidents: tuple[IncidentRow, ...]
    changes: tuple[ChangeRow, ...]
    targets: tuple[TargetRow, ...] = field(default=())
