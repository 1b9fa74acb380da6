"""Collector configuration: identity, broker, database, where contracts and calendars live, API."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from linewarden.config.base import BrokerConfig, ConfigId, PositiveDuration, Secret, StrictModel, TimeZoneName


class CollectorSection(StrictModel):
    id: ConfigId = "collector"
    data_dir: Path = Path("linewarden-collector-data")
    database_url: str | Secret | None = Field(
        default=None,
        description="postgresql://… for the scale-out store (with a password: { env = … } or { file = … }); "
        "default: SQLite in data_dir",
    )
    timezone: TimeZoneName = "UTC"
    production_calendar: str | None = Field(
        default=None, description="id of the plant's production calendar (for 'production' uptime lines)"
    )
    log_level: str = Field(default="info", pattern=r"^(debug|info|warning|error)$")
    log_format: Literal["text", "json"] = "text"

    @field_validator("database_url")
    @classmethod
    def _no_inline_password(cls, value: str | Secret | None) -> str | Secret | None:
        if isinstance(value, str) and urlsplit(value).password:
            raise ValueError("a database_url with a password is a secret: give { env = 'VAR' } or { file = '/path' }")
        return value

    def database(self) -> str | None:
        """The database URL, read from its secret source now. Raises ValueError naming the source."""
        return self.database_url.reveal() if isinstance(self.database_url, Secret) else self.database_url


class LivenessConfig(StrictModel):
    missed_heartbeats: Annotated[int, Field(ge=1, le=100)] = 3
    clock_skew_threshold: PositiveDuration = timedelta(seconds=30)
    max_seq_ahead: Annotated[int, Field(ge=1, description="an event seq further beyond its epoch's ack is refused")] = (
        10_000_000
    )


KIB, MIB = 1024, 1024 * 1024


class IngestConfig(StrictModel):
    # At least twice an agent's largest batch (`outbox.batch_max_bytes` is at most 512 KiB).
    max_payload_bytes: Annotated[int, Field(ge=MIB, le=256 * MIB)] = MIB


class ApiConfig(StrictModel):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8470
    max_body_bytes: Annotated[int, Field(ge=4 * KIB, le=256 * MIB)] = MIB
    max_upload_bytes: Annotated[int, Field(ge=KIB, le=1024 * MIB, description="an RCA document, decoded")] = 20 * MIB


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


class AuditConfig(StrictModel):
    """Signed checkpoints of the audit log, kept outside the database (docs/security-evidence.md)."""

    signing_key: Path | None = Field(
        default=None, description="Ed25519 private key (`collector audit keygen`); none: no checkpoints"
    )
    checkpoint_file: Path | None = Field(default=None, description="default: audit-checkpoints.jsonl in data_dir")
    checkpoint_interval: PositiveDuration = timedelta(hours=1)
    syslog: str | None = Field(default=None, description="also send each checkpoint: '/dev/log' or 'host:port'")


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
    ingest: IngestConfig = IngestConfig()
    api: ApiConfig = ApiConfig()
    console: ConsoleConfig = ConsoleConfig()
    plant_it: PlantItConfig = PlantItConfig()
    audit: AuditConfig = AuditConfig()

    @property
    def checkpoint_file(self) -> Path:
        return self.audit.checkpoint_file or self.collector.data_dir / "audit-checkpoints.jsonl"
