"""Agent configuration: who the agent is, its broker, outbox, defaults, assets and targets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from linewarden.config.base import BrokerConfig, ConfigId, PositiveDuration, StrictModel, TimeZoneName
from linewarden.config.targets import ModbusTarget, OpcUaTrustMode, TargetConfig
from linewarden.domain import Criticality, Severity
from linewarden.wire import MAX_BATCH_EVENTS, MAX_INTERVAL_S, MAX_TARGETS


class AgentSection(StrictModel):
    id: ConfigId
    site: ConfigId
    data_dir: Path = Path("linewarden-agent-data")
    timezone: TimeZoneName = "UTC"
    production_calendar: Path | None = Field(
        default=None, description="calendar TOML file (relative to this file); none = always in production"
    )
    heartbeat_interval: PositiveDuration = timedelta(seconds=60)
    metrics: bool = True
    outbox_figures: bool = Field(
        default=True,
        description="heartbeats carry the outbox depth and oldest unacknowledged time; false only while the"
        " collector is older than these fields (it refuses them)",
    )
    log_level: str = Field(default="info", pattern=r"^(debug|info|warning|error)$")
    log_format: Literal["text", "json"] = "text"
    metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = Field(
        default=None, description="serve Prometheus /metrics on 127.0.0.1:PORT; none = off"
    )

    @field_validator("heartbeat_interval")
    @classmethod
    def _heartbeat_fits_the_wire(cls, value: timedelta) -> timedelta:
        if value > timedelta(seconds=MAX_INTERVAL_S):
            raise ValueError("at most 1 day (the longest heartbeat interval the wire protocol carries)")
        return value


class Defaults(StrictModel):
    interval: PositiveDuration = timedelta(seconds=5)
    timeout: PositiveDuration = timedelta(seconds=2)
    fail_threshold: Annotated[int, Field(ge=1, le=100)] = 3
    recover_threshold: Annotated[int, Field(ge=1, le=100)] = 2


class FlapConfig(StrictModel):
    """More than `max_changes` state changes within `window` keeps one incident open instead of many."""

    max_changes: Annotated[int, Field(ge=2)] = 4
    window: PositiveDuration = timedelta(minutes=10)


class OutboxConfig(StrictModel):
    max_events: Annotated[int, Field(ge=100)] = 1_000_000
    max_age: PositiveDuration = timedelta(days=30)
    batch_max_events: Annotated[int, Field(ge=1, le=MAX_BATCH_EVENTS)] = 500
    # At most half the collector's smallest payload limit, so no agent message is ever refused for its size.
    batch_max_bytes: Annotated[int, Field(ge=16 * 1024, le=512 * 1024)] = 256 * 1024
    window: Annotated[int, Field(ge=1, le=100)] = 10
    ack_timeout: PositiveDuration = timedelta(seconds=15)
    # Cap on the outbox file (None: the disk is the cap); reaching it is handled as a full disk.
    max_bytes: Annotated[int, Field(ge=65_536)] | None = None
    # Events that wait in memory while the outbox cannot be written (disk full).
    memory_buffer_events: Annotated[int, Field(ge=10)] = 10_000


class SeverityRow(StrictModel):
    down_in_production: Severity
    down_off_production: Severity
    degraded_in_production: Severity
    degraded_off_production: Severity


class SeverityMatrix(StrictModel):
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


class OpcUaSection(StrictModel):
    """Which OPC UA server certificates the agent trusts, for targets that do not say."""

    trust_dir: Path | None = Field(
        default=None, description="trusted server certificates and CAs; default: opcua-trust in data_dir"
    )
    trust: OpcUaTrustMode = Field(
        default="list", description="'list': only the trust_dir's; 'tofu': pin the first one seen"
    )


class Asset(StrictModel):
    id: ConfigId
    criticality: Criticality
    name: str = ""


class AgentConfig(StrictModel):
    agent: AgentSection
    broker: BrokerConfig = BrokerConfig()
    outbox: OutboxConfig = OutboxConfig()
    defaults: Defaults = Defaults()
    flap: FlapConfig = FlapConfig()
    severity: SeverityMatrix = SeverityMatrix()
    opcua: OpcUaSection = OpcUaSection()
    assets: list[Asset] = Field(min_length=1)
    targets: list[TargetConfig] = Field(min_length=1, max_length=MAX_TARGETS)

    @model_validator(mode="after")
    def _references(self) -> AgentConfig:
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
        return self

    @field_validator("targets")
    @classmethod
    def _one_setting_per_modbus_line(cls, targets: list[TargetConfig]) -> list[TargetConfig]:
        first: dict[str, ModbusTarget] = {}
        for t in targets:
            if not isinstance(t, ModbusTarget):
                continue
            other = first.setdefault(t.line, t)
            if other.line_settings != t.line_settings:
                raise ValueError(
                    f"targets {other.id!r} and {t.id!r} share Modbus line {t.line} but not its settings "
                    f"({other.line_settings} against {t.line_settings})"
                )
        return targets

    def opcua_trust(self) -> OpcUaSection:
        """[opcua] with its trust_dir resolved (data_dir/opcua-trust when not given)."""
        trust_dir = self.opcua.trust_dir or self.agent.data_dir / "opcua-trust"
        return OpcUaSection(trust_dir=trust_dir, trust=self.opcua.trust)

    def asset(self, asset_id: str) -> Asset:
        return next(a for a in self.assets if a.id == asset_id)
