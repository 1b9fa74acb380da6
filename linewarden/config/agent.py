"""Agent configuration: who the agent is, its broker, outbox, defaults, assets and targets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from msgspec import Meta, field

from linewarden.config.base import (
    BrokerConfig,
    ConfigId,
    FieldProblem,
    Port,
    PositiveDuration,
    StrictStruct,
    check_zone_field,
)
from linewarden.config.targets import ModbusTarget, OpcUaTrustMode, TargetConfig
from linewarden.domain import Criticality, Severity
from linewarden.limits import MAX_BATCH_EVENTS, MAX_INTERVAL_S, MAX_TARGETS

Threshold = Annotated[int, Meta(ge=1, le=100)]


class AgentSection(StrictStruct, frozen=True):
    id: ConfigId
    site: ConfigId
    # A path default is a factory: msgspec writes plain defaults into the JSON schema and cannot write a Path.
    data_dir: Annotated[Path, Meta(description="default: linewarden-agent-data")] = field(
        default_factory=lambda: Path("linewarden-agent-data")
    )
    timezone: str = "UTC"  # an IANA name such as 'Europe/Berlin'
    # calendar TOML file (relative to this file); none = always in production
    production_calendar: Path | None = None
    heartbeat_interval: PositiveDuration = timedelta(seconds=60)
    metrics: bool = True
    # heartbeats carry the outbox depth and oldest unacknowledged time; false only while the collector is older
    # than these fields (it refuses them)
    outbox_figures: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    metrics_port: Port | None = None  # serve Prometheus /metrics on 127.0.0.1:PORT; none = off

    def __post_init__(self) -> None:
        check_zone_field("timezone", self.timezone)
        if self.heartbeat_interval > timedelta(seconds=MAX_INTERVAL_S):
            raise FieldProblem(
                "heartbeat_interval", "at most 1 day (the longest heartbeat interval the wire protocol carries)"
            )


class Defaults(StrictStruct, frozen=True):
    interval: PositiveDuration = timedelta(seconds=5)
    timeout: PositiveDuration = timedelta(seconds=2)
    fail_threshold: Threshold = 3
    recover_threshold: Threshold = 2


class FlapConfig(StrictStruct, frozen=True):
    """More than `max_changes` state changes within `window` keeps one incident open instead of many."""

    max_changes: Annotated[int, Meta(ge=2)] = 4
    window: PositiveDuration = timedelta(minutes=10)


class OutboxConfig(StrictStruct, frozen=True):
    max_events: Annotated[int, Meta(ge=100)] = 1_000_000
    max_age: PositiveDuration = timedelta(days=30)
    batch_max_events: Annotated[int, Meta(ge=1, le=MAX_BATCH_EVENTS)] = 500
    # At most half the collector's smallest payload limit, so no agent message is ever refused for its size.
    batch_max_bytes: Annotated[int, Meta(ge=16 * 1024, le=512 * 1024)] = 256 * 1024
    window: Annotated[int, Meta(ge=1, le=100)] = 10
    ack_timeout: PositiveDuration = timedelta(seconds=15)
    # Cap on the outbox file (None: the disk is the cap); reaching it is handled as a full disk.
    max_bytes: Annotated[int, Meta(ge=65_536)] | None = None
    # Events that wait in memory while the outbox cannot be written (disk full).
    memory_buffer_events: Annotated[int, Meta(ge=10)] = 10_000


class SeverityRow(StrictStruct, frozen=True):
    down_in_production: Severity
    down_off_production: Severity
    degraded_in_production: Severity
    degraded_off_production: Severity


class SeverityMatrix(StrictStruct, frozen=True):
    """Criticality × state × production calendar → severity (the default table in docs/figures.md)."""

    critical: SeverityRow = SeverityRow(
        down_in_production=Severity.S1,
        down_off_production=Severity.S2,
        degraded_in_production=Severity.S2,
        degraded_off_production=Severity.S3,
    )
    high: SeverityRow = SeverityRow(
        down_in_production=Severity.S2,
        down_off_production=Severity.S3,
        degraded_in_production=Severity.S3,
        degraded_off_production=Severity.S4,
    )
    medium: SeverityRow = SeverityRow(
        down_in_production=Severity.S3,
        down_off_production=Severity.S4,
        degraded_in_production=Severity.S4,
        degraded_off_production=Severity.S4,
    )
    low: SeverityRow = SeverityRow(
        down_in_production=Severity.S4,
        down_off_production=Severity.S4,
        degraded_in_production=Severity.S4,
        degraded_off_production=Severity.S4,
    )

    def row(self, criticality: Criticality) -> SeverityRow:
        row: SeverityRow = getattr(self, criticality.value)
        return row


class OpcUaSection(StrictStruct, frozen=True):
    """Which OPC UA server certificates the agent trusts, for targets that do not say."""

    trust_dir: Path | None = None  # trusted server certificates and CAs; default: opcua-trust in data_dir
    trust: OpcUaTrustMode = "list"  # 'list': only the trust_dir's; 'tofu': pin the first one seen


class Asset(StrictStruct, frozen=True):
    id: ConfigId
    criticality: Criticality
    name: str = ""


class AgentConfig(StrictStruct, frozen=True, kw_only=True):
    agent: AgentSection
    broker: BrokerConfig = BrokerConfig()
    outbox: OutboxConfig = OutboxConfig()
    defaults: Defaults = Defaults()
    flap: FlapConfig = FlapConfig()
    severity: SeverityMatrix = SeverityMatrix()
    opcua: OpcUaSection = OpcUaSection()
    assets: Annotated[list[Asset], Meta(min_length=1)]
    targets: Annotated[list[TargetConfig], Meta(min_length=1, max_length=MAX_TARGETS)]

    def __post_init__(self) -> None:
        self._one_setting_per_modbus_line()
        asset_ids = [a.id for a in self.assets]
        if len(set(asset_ids)) != len(asset_ids):
            raise ValueError("asset ids must be unique")
        target_ids = [t.id for t in self.targets]
        dupes = sorted({t for t in target_ids if target_ids.count(t) > 1})
        if dupes:
            raise ValueError(f"target ids must be unique; repeated: {', '.join(dupes)}")
        known = set(asset_ids)
        for t in self.targets:
            if t.asset not in known:
                raise ValueError(f"target {t.id!r} names asset {t.asset!r}, which is not in [[assets]]")

    def _one_setting_per_modbus_line(self) -> None:
        first: dict[str, ModbusTarget] = {}
        for t in self.targets:
            if not isinstance(t, ModbusTarget):
                continue
            other = first.setdefault(t.line, t)
            if other.line_settings != t.line_settings:
                raise FieldProblem(
                    "targets",
                    f"targets {other.id!r} and {t.id!r} share Modbus line {t.line} but not its settings "
                    f"({other.line_settings} against {t.line_settings})",
                )

    def opcua_trust(self) -> OpcUaSection:
        """[opcua] with its trust_dir resolved (data_dir/opcua-trust when not given)."""
        trust_dir = self.opcua.trust_dir or self.agent.data_dir / "opcua-trust"
        return OpcUaSection(trust_dir=trust_dir, trust=self.opcua.trust)

    def asset(self, asset_id: str) -> Asset:
        return next(a for a in self.assets if a.id == asset_id)
