"""Collector configuration: identity, broker, database, where contracts and calendars live, API."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from linewarden.config.base import BrokerConfig, ConfigId, PositiveDuration, StrictModel, TimeZoneName


class CollectorSection(StrictModel):
    id: ConfigId = "collector"
    data_dir: Path = Path("linewarden-collector-data")
    database_url: str | None = Field(
        default=None, description="postgresql://… for the scale-out store; default: SQLite in data_dir"
    )
    timezone: TimeZoneName = "UTC"
    production_calendar: str | None = Field(
        default=None, description="id of the plant's production calendar (for 'production' uptime lines)"
    )


class LivenessConfig(StrictModel):
    missed_heartbeats: Annotated[int, Field(ge=1, le=100)] = 3
    clock_skew_threshold: PositiveDuration = timedelta(seconds=30)
    max_seq_ahead: Annotated[int, Field(ge=1, description="an event seq further beyond its epoch's ack is refused")] = (
        10_000_000
    )


class ApiConfig(StrictModel):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8470


class ConsoleConfig(StrictModel):
    """The web console, served by the API's server under `prefix` (docs/console.md)."""

    enabled: bool = True
    prefix: str = Field(default="/console", pattern=r"^/[a-z0-9_-]+$")
    session_ttl: PositiveDuration = timedelta(hours=8)
    secure_cookies: Literal["auto", "always", "never"] = Field(
        default="auto", description="auto: Secure cookies when the request came over HTTPS"
    )


class PlantItConfig(StrictModel):
    """Where incidents that are nobody's vendor's go (out of scope, agent down, site link)."""

    notify: list[str] = Field(default_factory=lambda: ["plant-it"])
    webhook_url: str | None = Field(default=None, pattern=r"^https?://.+")


class CollectorConfig(StrictModel):
    collector: CollectorSection = CollectorSection()
    broker: BrokerConfig = BrokerConfig()
    contracts: list[str] = Field(
        default_factory=lambda: ["contracts/*.toml"], description="globs, relative to this file"
    )
    calendars: list[str] = Field(
        default_factory=lambda: ["calendars/*.toml"], description="globs, relative to this file"
    )
    liveness: LivenessConfig = LivenessConfig()
    api: ApiConfig = ApiConfig()
    console: ConsoleConfig = ConsoleConfig()
    plant_it: PlantItConfig = PlantItConfig()
