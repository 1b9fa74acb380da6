"""Collector configuration: identity, broker, database, where contracts and calendars live, API."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from linewarden.config.base import BrokerConfig, Secret
from linewarden.config.pydantic_base import (
    BrokerField,
    ConfigId,
    PositiveDuration,
    SecretField,
    StrictModel,
    TimeZoneName,
)
from linewarden.config.remote_access import RemoteAccessConfig


class CollectorSection(StrictModel):
    id: ConfigId = "collector"
    data_dir: Path = Path("linewarden-collector-data")
    database_url: str | SecretField | None = Field(
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
    share_group: ConfigId | None = Field(
        default=None,
        description="several collectors on one PostgreSQL: the MQTT shared-subscription group they split the "
        "agents' messages in ($share/<group>/...); none: this collector receives every message",
    )
    birth_wait: PositiveDuration = Field(
        default=timedelta(minutes=10),
        description="an event batch that arrives before its boot's birth is held this long for it",
    )


class ApiConfig(StrictModel):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8470
    max_body_bytes: Annotated[int, Field(ge=4 * KIB, le=256 * MIB)] = MIB
    max_upload_bytes: Annotated[int, Field(ge=KIB, le=1024 * MIB, description="an RCA document, decoded")] = 20 * MIB
    tls_cert_file: Path | None = Field(default=None, description="serve HTTPS with this certificate (PEM chain)")
    tls_key_file: Path | None = Field(default=None, description="the certificate's private key (PEM)")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="reverse proxies whose X-Forwarded-For/-Proto headers are believed"
    )

    @model_validator(mode="after")
    def _https_or_loopback(self) -> ApiConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_cert_file is None and not self.trusted_proxies and not _loopback(self.host):
            raise ValueError(f"plain HTTP on {self.host} (not loopback): set tls_cert_file and tls_key_file, "
                             "or trusted_proxies for the TLS proxy in front")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy)
            except ValueError:
                raise ValueError(f"trusted_proxies: {proxy!r} is not an IP address or network") from None
        return self


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


ConsoleRole = Literal["plant_it", "procurement", "vendor", "admin"]


class OidcConfig(StrictModel):
    """Single sign-on over OpenID Connect (authorization code with PKCE); docs/console.md."""

    issuer: str = Field(pattern=r"^https?://.+", description="the provider's issuer URL (discovery under it)")
    client_id: str = Field(min_length=1)
    client_secret: SecretField
    redirect_path: str = Field(default="/login/oidc/callback", pattern=r"^/[A-Za-z0-9/_-]+$",
                               description="under the console's prefix; register prefix+path at the provider")
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    username_claim: str = "preferred_username"
    role_claim: str = Field(default="roles", description="e.g. 'roles' (Entra ID app roles) or 'groups'")
    roles: dict[str, ConsoleRole] = Field(
        description="claim value -> console role; of several, admin > vendor > procurement > plant_it")
    vendor_claim: str | None = Field(default=None, description="claim holding a vendor user's vendor id")
    site_claim: str | None = Field(default=None, description="claim listing the sites the user may see")
    timeout: PositiveDuration = timedelta(seconds=5)

    @model_validator(mode="after")
    def _openid(self) -> OidcConfig:
        if "openid" not in self.scopes:
            raise ValueError("scopes must contain 'openid'")
        return self


class ConsoleConfig(StrictModel):
    """The web console, served by the API's server under `prefix` (docs/console.md)."""

    enabled: bool = True
    prefix: str = Field(default="/console", pattern=r"^/[a-z0-9_-]+$")
    session_ttl: PositiveDuration = Field(default=timedelta(hours=8), description="absolute session lifetime")
    session_idle: PositiveDuration = Field(default=timedelta(minutes=30),
                                           description="a session unused this long ends")
    mfa_required_roles: list[ConsoleRole] = Field(
        default_factory=lambda: list[ConsoleRole](["admin"]),
        description="roles that must log in with a TOTP code as well",
    )
    lockout_failures: int = Field(default=5, ge=1, description="failed logins of one user before its lockout")
    lockout_failures_per_address: int = Field(default=20, ge=1,
                                              description="failed logins from one address before its lockout")
    lockout_period: PositiveDuration = timedelta(minutes=15)
    secure_cookies: Literal["auto", "always", "never"] = Field(
        default="auto", description="auto: Secure cookies when the request came over HTTPS"
    )
    oidc: OidcConfig | None = None
    totp_key_file: Path | None = Field(
        default=None, description="the key the users' TOTP secrets are encrypted with (made 0600 on first start); "
        "default: console-totp.key beside [audit] signing_key, else in data_dir",
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


class RetentionConfig(StrictModel):
    """How long the store keeps what (docs/retention.md); `collector prune`, and on a schedule in `collector run`."""

    raw: PositiveDuration = Field(
        default=timedelta(days=90),
        description="metrics, heartbeats and dead letters; older ones are rolled up per target per hour",
    )
    contract_term: PositiveDuration = Field(
        default=timedelta(days=3 * 366), description="the longest contract term the records must outlive"
    )
    years_after_term: int = Field(default=2, ge=0, le=50, description="records are kept this much longer")
    schedule: bool = True
    every: PositiveDuration = Field(default=timedelta(days=1), description="between scheduled prunes")
    archive_dir: Path | None = Field(default=None, description="default: archive/ in data_dir")
class EscalationEmail(StrictModel):
    """The SMTP submission server escalation e-mails go through (the e-mail ticket sink's rules)."""

    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    starttls: bool = True
    ca_file: Path | None = None
    username: str | None = None
    password: SecretField | None = None
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")


class EscalationConfig(StrictModel):
    """Escalation that reaches people: the contacts directory and how to deliver (docs/vendor-readback-and-
    escalation.md). Without `contacts`, escalation levels only name their contacts in the vendor ticket."""

    contacts: Path | None = Field(default=None, description="the contacts directory (TOML), relative to this file")
    email: EscalationEmail | None = None
    pagerduty_events_url: str = Field(default="https://events.pagerduty.com/v2/enqueue", pattern=r"^https?://.+")
    attempts: Annotated[int, Field(ge=1, le=50)] = 6
    retry_wait: PositiveDuration = Field(default=timedelta(seconds=30), description="doubles after each failure")
    check_horizon: PositiveDuration = Field(
        default=timedelta(days=400), description="rotas must cover every instant from now this far ahead"
    )


class CollectorConfig(StrictModel):
    collector: CollectorSection = CollectorSection()
    broker: BrokerField = Field(default_factory=BrokerConfig)
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
    remote_access: RemoteAccessConfig = RemoteAccessConfig()
    retention: RetentionConfig = RetentionConfig()
    escalation: EscalationConfig = EscalationConfig()

    @model_validator(mode="after")
    def _shared_ingest_needs_a_shared_store(self) -> CollectorConfig:
        if self.ingest.share_group is not None and self.collector.database_url is None:
            raise ValueError(
                "ingest.share_group: collectors sharing the ingest need one shared store: set collector.database_url"
                " (PostgreSQL)"
            )
        return self

    @property
    def checkpoint_file(self) -> Path:
        return self.audit.checkpoint_file or self.collector.data_dir / "audit-checkpoints.jsonl"

    @property
    def totp_key_file(self) -> Path:
        if self.console.totp_key_file is not None:
            return self.console.totp_key_file
        beside = self.audit.signing_key.parent if self.audit.signing_key is not None else self.collector.data_dir
        return beside / "console-totp.key"
