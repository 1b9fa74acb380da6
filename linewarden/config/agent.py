"""Agent configuration: who the agent is, its broker, outbox, defaults, assets and targets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from linewarden.config.base import BrokerConfig, ConfigId, PositiveDuration, StrictModel, TimeZoneName
from linewarden.config.targets import TargetConfig
from linewarden.domain import Criticality, Severity


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
    log_level: str = Field(default="info", pattern=r"^(debug|info|warning|error)$")


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
    batch_max_events: Annotated[int, Field(ge=1, le=10_000)] = 500
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
    """Criticality × state × production calendar → severity (DESIGN §4 default)."""

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
    assets: list[Asset] = Field(min_length=1)
    targets: list[TargetConfig] = Field(min_length=1)

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

    def asset(self, asset_id: str) -> Asset:
        return next(a for a in self.assets if a.id == asset_id)
