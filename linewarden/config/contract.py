"""Contract configuration (docs/figures.md): one file per vendor contract."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, TypeAdapter, field_validator, model_validator

from linewarden.config.change_policy import ChangePolicy
from linewarden.config.lifecycle import EscrowItem, Term, Termination
from linewarden.config.pydantic_base import ConfigId, Duration, PositiveDuration, SecretField, StrictModel, TimeZoneName
from linewarden.domain import Criticality, Severity

# Larger amounts or percentages are typing mistakes, and would overflow decimal arithmetic (28 digits).
_MAX_DECIMAL = Decimal(10) ** 15


def _exact_decimal(value: object) -> object:
    """TOML has no decimal type: take a float by its shortest repr (10000.0 → '10000.0'), never its binary value."""
    if isinstance(value, float):
        dec = Decimal(repr(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        dec = Decimal(value)
    else:
        return value
    if not dec.is_finite() or abs(dec) >= _MAX_DECIMAL:
        raise ValueError(f"a number below {_MAX_DECIMAL:,} is needed here")
    return dec


def _money(value: object) -> object:
    dec = _exact_decimal(value)
    if isinstance(dec, Decimal):
        if dec != dec.quantize(Decimal("0.01")):
            raise ValueError("an amount has at most two decimal places")
        return dec.quantize(Decimal("0.01"))
    return dec


Pct = Annotated[Decimal, BeforeValidator(_exact_decimal), Field(ge=0, le=100)]
Money = Annotated[Decimal, BeforeValidator(_money), Field(ge=0)]
SEVERITIES = ("S1", "S2", "S3", "S4")
_BUSINESS_DAYS = re.compile(r"^\s*(\d+)\s+business\s+days?\s*$")


class BusinessDays(StrictModel):
    """A deadline counted in business days of the support calendar (e.g. '5 business days')."""

    days: Annotated[int, Field(ge=1)]


def _to_deadline(value: object) -> object:
    if isinstance(value, str):
        m = _BUSINESS_DAYS.match(value)
        if m:
            return BusinessDays(days=int(m.group(1)))
    return value


Deadline = Annotated[BusinessDays | PositiveDuration, BeforeValidator(_to_deadline)]


class ContractSection(StrictModel):
    id: ConfigId
    vendor: ConfigId
    name: str = ""
    document_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    fee_per_period: Money
    period: Literal["monthly"] = "monthly"
    timezone: TimeZoneName


class ServiceDef(StrictModel):
    """A service made of assets; its state follows `rule` (all must be UP, any, or k of n)."""

    id: ConfigId
    components: list[ConfigId] = Field(min_length=1)
    rule: Literal["all", "any", "k_of_n"] = "all"
    k: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _k(self) -> ServiceDef:
        if self.rule == "k_of_n":
            if self.k is None:
                raise ValueError("rule 'k_of_n' needs k")
            if self.k > len(self.components):
                raise ValueError(f"k = {self.k} is more than the {len(self.components)} components")
        elif self.k is not None:
            raise ValueError("k is only for rule 'k_of_n'")
        return self


class Scope(StrictModel):
    services: list[ConfigId] = Field(default_factory=list)
    assets: list[ConfigId] = Field(default_factory=list)
    asset_classes: list[Criticality] = Field(default_factory=list)
    exclude_assets: list[ConfigId] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> Scope:
        if not (self.services or self.assets or self.asset_classes):
            raise ValueError("scope covers nothing: give services, assets or asset_classes")
        return self


class SeverityTarget(StrictModel):
    response: PositiveDuration
    resolution: PositiveDuration


class SupportTargets(StrictModel):
    S1: SeverityTarget | None = None
    S2: SeverityTarget | None = None
    S3: SeverityTarget | None = None
    S4: SeverityTarget | None = None

    def for_severity(self, severity: Severity) -> SeverityTarget | None:
        target: SeverityTarget | None = getattr(self, severity.value)
        return target


class Support(StrictModel):
    tier: str = Field(min_length=1)
    coverage: str = Field(default="24x7", description="'24x7' or the id of a calendar")
    pause_allowed: bool = True
    targets: SupportTargets


class UptimeTarget(StrictModel):
    scope: ConfigId = Field(description="a service id, an asset id, or an asset class (critical, high, …)")
    target_pct: Annotated[Decimal, BeforeValidator(_exact_decimal), Field(gt=0, le=100)]
    coverage: str = Field(default="24x7", description="'24x7', 'production', or the id of a calendar")
    degraded_weight: Annotated[Decimal, BeforeValidator(_exact_decimal), Field(ge=0, le=1)] = Decimal(0)
    min_observed_pct: Pct | None = Field(
        default=None,
        description="below this observed share the line is 'insufficient data': no met, no credit (unset: report only)",
    )


class MaintenancePolicy(StrictModel):
    notice: Duration = timedelta(hours=72)
    monitoring_gaps: Literal["exclude", "up", "down"] = "exclude"


class UptimeBand(StrictModel):
    below_pct: Pct
    fee_pct: Pct


class BreachCredit(StrictModel):
    response_fee_pct: Pct = Decimal(0)
    resolution_fee_pct: Pct = Decimal(0)
    response_amount: Money = Decimal(0)
    resolution_amount: Money = Decimal(0)


class BreachCredits(StrictModel):
    S1: BreachCredit | None = None
    S2: BreachCredit | None = None
    S3: BreachCredit | None = None
    S4: BreachCredit | None = None

    def for_severity(self, severity: Severity) -> BreachCredit | None:
        credit: BreachCredit | None = getattr(self, severity.value)
        return credit


class Credits(StrictModel):
    uptime: list[UptimeBand] = Field(default_factory=list)
    breach: BreachCredits = BreachCredits()
    cap_fee_pct: Pct = Decimal(100)

    @field_validator("uptime")
    @classmethod
    def _monotone(cls, bands: list[UptimeBand]) -> list[UptimeBand]:
        """A lower uptime never earns a smaller credit: the lower a band's below_pct, the higher or equal its
        fee_pct. (Bands listed out of order are reported by the contract's own check.)"""
        for (i, upper), (j, lower) in itertools.pairwise(enumerate(bands)):
            if lower.below_pct < upper.below_pct and lower.fee_pct < upper.fee_pct:
                raise ValueError(
                    f"band [{j}] (below_pct {lower.below_pct}) has fee_pct {lower.fee_pct}, less than the "
                    f"{upper.fee_pct} of band [{i}] (below_pct {upper.below_pct}): a lower uptime must earn "
                    "at least the credit of a higher one"
                )
        return bands


MAX_ESCALATION_PCT = 1000  # ten times the response target
_DURATION: TypeAdapter[timedelta] = TypeAdapter(Duration)


class EscalationLevel(StrictModel):
    """Fires when `after` elapses on an open ticket: 'response_target', 'resolution_target',
    a duration ('2h'), or a fraction of the response target ('50%')."""

    after: str = Field(pattern=r"^(response_target|resolution_target|\d+(\.\d+)?%|\d+(\.\d+)?\s*(ms|s|m|min|h|d|w))$")
    severities: list[Severity] = Field(min_length=1)
    notify: list[str] = Field(min_length=1)
    notify_outside_coverage: list[str] = Field(default_factory=list)

    @field_validator("after")
    @classmethod
    def _bounded(cls, after: str) -> str:
        """Checked here, not when a ticket is raised: the deadline is computed inside the vendor's record step."""
        if after.endswith("%"):
            if float(after[:-1]) > MAX_ESCALATION_PCT:
                raise ValueError(f"at most {MAX_ESCALATION_PCT}% of the response target")
        elif after not in ("response_target", "resolution_target"):
            _DURATION.validate_python(after)
        return after


class Reminders(StrictModel):
    every: PositiveDuration = timedelta(hours=48)


class RcaPolicy(StrictModel):
    severities: list[Severity] = Field(default_factory=lambda: [Severity.S1])
    due: Deadline = BusinessDays(days=5)


class WebhookSink(StrictModel):
    """POST a signed JSON body per ticket step; the body and headers are specified in collector/ticketing/webhook.py."""

    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://.+")
    secret: SecretField


class EmailSink(StrictModel):
    """SMTP submission with STARTTLS and AUTH; `ca_file` trusts a private CA (the default trusts the system's)."""

    kind: Literal["email"]
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    starttls: bool = True
    ca_file: Path | None = None
    username: str | None = None
    password: SecretField | None = None
    sender: str
    to: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _credentials(self) -> EmailSink:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        if self.password is not None and not self.starttls:
            raise ValueError("a password is only sent over STARTTLS: set starttls = true")
        return self


def _default_priorities() -> dict[Severity, str]:
    return {Severity.S1: "Highest", Severity.S2: "High", Severity.S3: "Medium", Severity.S4: "Low"}


class Readback(StrictModel):
    """Reading the vendor's own ticket back (docs/vendor-readback-and-escalation.md)."""

    enabled: bool = True
    every: PositiveDuration = Field(default=timedelta(minutes=2), description="one round per contract this often")
    requests_per_minute: Annotated[int, Field(ge=1, le=6000)] = Field(
        default=60, description="request budget at this vendor (its rate limit, minus a margin)"
    )
    page_size: Annotated[int, Field(ge=1, le=1000)] = 50
    max_pages: Annotated[int, Field(ge=1, le=1000)] = Field(default=20, description="per round; the rest next round")
    max_response_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    max_retry_after: PositiveDuration = Field(
        default=timedelta(minutes=5), description="a longer Retry-After ends the round; the next one tries again"
    )
    timezone: TimeZoneName = Field(
        default="UTC", description="the integration user's profile time zone: the vendor reads query dates in it"
    )
    acknowledged_statuses: list[str] = Field(
        default_factory=list,
        description="vendor statuses that mean acknowledged (beside any assignee, comment or work started)",
    )


class JiraSink(StrictModel):
    """Jira Cloud / Jira Service Management. With `service_desk_id` and `request_type_id` tickets are created as
    customer requests (servicedeskapi); otherwise as issues of `issue_type` in `project_key` (REST v3)."""

    kind: Literal["jira"]
    base_url: str = Field(pattern=r"^https?://.+")
    user: str
    api_token: SecretField
    project_key: str
    issue_type: str = "Incident"
    service_desk_id: str | None = None
    request_type_id: str | None = None
    resolve_transition: str = "Resolve"
    priorities: dict[Severity, str] = Field(default_factory=_default_priorities)
    readback: Readback | None = None

    @model_validator(mode="after")
    def _request_type(self) -> JiraSink:
        if (self.service_desk_id is None) != (self.request_type_id is None):
            raise ValueError("give both service_desk_id and request_type_id (a JSM request), or neither (an issue)")
        return self


class ServiceNowSink(StrictModel):
    """ServiceNow Table API on the incident table; `close_code` must be one of the instance's close codes."""

    kind: Literal["servicenow"]
    instance_url: str = Field(pattern=r"^https?://.+")
    user: str
    password: SecretField
    assignment_group: str | None = None
    close_code: str = "Solution provided"
    readback: Readback | None = None


class PagerDutySink(StrictModel):
    kind: Literal["pagerduty"]
    events_url: str = Field(default="https://events.pagerduty.com/v2/enqueue", pattern=r"^https?://.+")
    routing_key: SecretField


SinkConfig = Annotated[
    WebhookSink | EmailSink | JiraSink | ServiceNowSink | PagerDutySink, Field(discriminator="kind")
]


class ContractConfig(StrictModel):
    contract: ContractSection
    term: Term | None = None
    termination: Termination = Termination()
    escrow: list[EscrowItem] = Field(default_factory=list)
    services: list[ServiceDef] = Field(default_factory=list)
    scope: Scope
    support: Support
    uptime: list[UptimeTarget] = Field(default_factory=list)
    maintenance: MaintenancePolicy = MaintenancePolicy()
    credits: Credits = Credits()
    escalation: list[EscalationLevel] = Field(default_factory=list)
    reminders: Reminders = Reminders()
    rca: RcaPolicy = RcaPolicy()
    ticketing: SinkConfig | None = None
    change_policy: ChangePolicy | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ContractConfig:
        service_ids = {s.id for s in self.services}
        for sid in self.scope.services:
            if sid not in service_ids:
                raise ValueError(f"scope.services names {sid!r}, which is not defined in [[services]]")
        bands = [b.below_pct for b in self.credits.uptime]
        if bands != sorted(bands, reverse=True) or len(set(bands)) != len(bands):
            raise ValueError("credits.uptime bands must be listed from the highest below_pct down, no repeats")
        return self
