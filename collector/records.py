"""History import records (README, "History import"): one JSON object per line.

A line is either a wire event with the agent that measured it (`site`, `agent`, and optionally `epoch`
and `boot`, both "import" by default) plus the event's own `seq`, `ts`, `type`, `body`; or one of the
collector's own records, told apart by its `record` field:

- ticket steps: `ticket_raised`, `ticket_acknowledged`, `ticket_triaged` (with `severity`),
  `ticket_paused`, `ticket_resumed`, `resolution_claimed`, `rca_received`: `incident`, `at`, `actor`, `details`;
- `maintenance_window`: `site`, `id`, `kind`, `start`, `end`, `assets`, `services`, optional `whole_site`,
  `lines` (agent ids) and `asset_classes`, `announced_at`, `announced_by`, `reason`, `cancelled_at`;
- `monitoring_gap`: `site`, `agent`, `start`, `end`, `reason`;
- `targets`: an agent's target list as of `at` (what its birth says live): `site`, `agent`, `at`, `targets`
  (each `id`, `kind`, `asset`, `criticality`).

Times are integers, milliseconds since the Unix epoch, UTC. Unknown fields are an error. A NUL character in any
text becomes U+FFFD, as on the wire (docs/limits.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, TypeAdapter, ValidationError, model_validator

from linewarden.domain import Criticality, Severity
from linewarden.errors import WireError
from linewarden.limits import ID_PATTERN
from linewarden.wire import MAX_MS, Event, TargetInfo, build, parse_event

# The wire's id and time (linewarden/wire.py) for these pydantic records.
Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]
Ms = Annotated[int, Field(ge=0, le=MAX_MS)]


def _without_nul(node: Any) -> Any:
    """`node` with NUL in every string (keys too) replaced by U+FFFD, as on the wire: PostgreSQL text cannot
    hold a NUL, and one would fail the whole import there."""
    if isinstance(node, str):
        return node.replace("\x00", "\ufffd")
    if isinstance(node, dict):
        return {_without_nul(k): _without_nul(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_without_nul(v) for v in node]
    return node


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return _without_nul(data)


class TicketStep(Record):
    record: Literal[
        "ticket_raised", "ticket_acknowledged", "ticket_paused", "ticket_resumed", "resolution_claimed", "rca_received"
    ]
    incident: Id
    at: Ms
    actor: str = Field(min_length=1)
    details: dict[str, Any] = Field(default_factory=dict)


class TicketTriaged(Record):
    """The vendor's triage; its severity is kept beside the measured one."""

    record: Literal["ticket_triaged"]
    incident: Id
    at: Ms
    actor: str = Field(min_length=1)
    severity: Severity = Field(strict=False)
    details: dict[str, Any] = Field(default_factory=dict)


class MaintenanceWindowRecord(Record):
    record: Literal["maintenance_window"]
    site: Id
    id: str = Field(min_length=1)
    kind: Literal["maintenance", "change"] = "maintenance"
    start: Ms
    end: Ms
    assets: list[Id] = Field(default_factory=list)
    services: list[Id] = Field(default_factory=list)
    whole_site: bool = False
    lines: list[Id] = Field(default_factory=list)
    asset_classes: list[Annotated[Criticality, Field(strict=False)]] = Field(default_factory=list)
    announced_at: Ms
    announced_by: str = Field(min_length=1)
    reason: str = ""
    cancelled_at: Ms | None = None

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindowRecord:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class MonitoringGapRecord(Record):
    record: Literal["monitoring_gap"]
    site: Id
    agent: Id
    start: Ms
    end: Ms
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> MonitoringGapRecord:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


def _target_infos(value: Any) -> list[TargetInfo]:
    """A birth's target list, decoded by the wire's own TargetInfo."""
    if not isinstance(value, list) or not value:
        raise ValueError("a list of at least one target")
    try:
        return [build(TargetInfo, t) for t in value]
    except WireError as exc:
        raise ValueError(str(exc)) from None


class TargetsRecord(Record):
    """An agent's target registry as a birth would carry it: which asset each target belongs to."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    record: Literal["targets"]
    site: Id
    agent: Id
    at: Ms
    targets: Annotated[list[TargetInfo], PlainValidator(_target_infos)]


CollectorRecord = Annotated[
    TicketStep | TicketTriaged | MaintenanceWindowRecord | MonitoringGapRecord | TargetsRecord,
    Field(discriminator="record"),
]
_records: TypeAdapter[CollectorRecord] = TypeAdapter(CollectorRecord)


class _EventOrigin(Record):
    site: Id
    agent: Id
    epoch: Id = "import"
    boot: Id = "import"


@dataclass(frozen=True)
class ImportedEvent:
    site: str
    agent: str
    epoch: str
    boot: str
    event: Event


ImportRecord = (
    ImportedEvent | TicketStep | TicketTriaged | MaintenanceWindowRecord | MonitoringGapRecord | TargetsRecord
)


def _reason(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return (f"{loc}: {err['msg']}" if loc else err["msg"]) + more


def parse_line(text: str) -> ImportRecord:
    """One import line as a record; raises WireError with a short reason for anything else."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WireError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(data, dict):
        raise WireError("a line must be a JSON object")
    try:
        if "record" in data:
            return _records.validate_python(data)
        origin = _EventOrigin.model_validate({k: data.pop(k) for k in ("site", "agent", "epoch", "boot") if k in data})
    except ValidationError as exc:
        raise WireError(_reason(exc)) from None
    return ImportedEvent(
        site=origin.site, agent=origin.agent, epoch=origin.epoch, boot=origin.boot, event=parse_event(data)
    )
