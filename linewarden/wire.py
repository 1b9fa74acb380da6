"""Wire protocol v1 (README, "Wire protocol"): topics and the pydantic models of every MQTT payload.

Times are integers: milliseconds since the Unix epoch, UTC. Site and agent ids are lower-case.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, TypeAdapter, ValidationError

from linewarden.domain import Criticality, ProbeKind, Severity, State
from linewarden.errors import WireError

PROTOCOL_VERSION = 1
TOPIC_ROOT = "lw/v1"
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
_ID_RE = re.compile(ID_PATTERN)

# Bounds (docs/limits.md). Every integer fits a BIGINT column; a time is at most the last millisecond of
# year 9999 (the largest a datetime holds).
BIGINT_MAX = 2**63 - 1
MAX_MS = 253_402_300_799_999
# Text longer than its limit is cut to the limit, ending in TRUNCATED; NUL (which PostgreSQL text cannot hold)
# becomes U+FFFD. Both happen in validation, so the agent's outbox and the collector's store see the same.
TRUNCATED = "…[truncated]"
MAX_TEXT = 1000  # reasons, changed values
MAX_SHORT_TEXT = 200  # versions, hashes, names
MAX_FAULT_TEXT = 500  # a birth's outbox_fault
MAX_SUBJECT_TEXT = 256  # a certificate's subject in a heartbeat
MAX_TARGETS = 2000  # targets of one agent (birth, heartbeat, incident)
MAX_WINDOWS = 1000  # maintenance windows in one announcement, assets or services in one window
MAX_BATCH_EVENTS = 10_000  # events in one batch
MAX_INTERVAL_S = 86_400  # a heartbeat interval
MAX_CERTIFICATES = 32  # expiring certificates in one heartbeat


def clip(text: str, limit: int) -> str:
    """`text` with NUL replaced and cut to `limit` characters, the cut marked by TRUNCATED."""
    text = text.replace("\x00", "\ufffd")
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def _clipper(limit: int) -> BeforeValidator:
    return BeforeValidator(lambda v: clip(v, limit) if isinstance(v, str) else v)


Ms = Annotated[int, Field(ge=0, le=MAX_MS)]
Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]
Seq = Annotated[int, Field(ge=1, le=BIGINT_MAX)]
Count = Annotated[int, Field(ge=0, le=BIGINT_MAX)]
Text = Annotated[str, _clipper(MAX_TEXT)]
ShortText = Annotated[str, _clipper(MAX_SHORT_TEXT)]
IntervalS = Annotated[int, Field(ge=1, le=MAX_INTERVAL_S)]
# A stable cause code beside a human reason: dotted, lower case (`modbus.exception.4`, `http.timeout`).
# Optional on the wire: events from before cause codes validate without it.
CAUSE_PATTERN = r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$"
MAX_CAUSE = 128
Cause = Annotated[str, Field(pattern=CAUSE_PATTERN, max_length=MAX_CAUSE)]


def is_valid_id(value: str) -> bool:
    return bool(_ID_RE.match(value)) and len(value) <= 64


# ---------------------------------------------------------------- topics


def birth_topic(site: str, agent: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{agent}/birth"


def death_topic(site: str, agent: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{agent}/death"


def events_topic(site: str, agent: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{agent}/events"


def ack_topic(site: str, agent: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{agent}/ack"


def maintenance_topic(site: str) -> str:
    """A site's windows for the collector's own tools and whatever the plant's ACL grants it to."""
    return f"{TOPIC_ROOT}/{site}/maintenance"


def agent_maintenance_topic(site: str, agent: str) -> str:
    """The same windows again for one agent of the site: the one maintenance topic the shipped ACL lets it read."""
    return f"{TOPIC_ROOT}/{site}/{agent}/maintenance"


COLLECTOR_STATE_TOPIC = f"{TOPIC_ROOT}/collector/state"
AGENT_SUBSCRIPTIONS = ("+/+/birth", "+/+/death", "+/+/events")


def parse_agent_topic(topic: str) -> tuple[str, str, str]:
    """Split `lw/v1/{site}/{agent}/{kind}` into (site, agent, kind). Raises WireError otherwise."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT:
        raise WireError(f"not a linewarden agent topic: {topic!r}")
    site, agent, kind = parts[2], parts[3], parts[4]
    if not (is_valid_id(site) and is_valid_id(agent)):
        raise WireError(f"bad site or agent id in topic {topic!r}")
    return site, agent, kind


# ---------------------------------------------------------------- models


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)
    # Optional fields added after v1 shipped: left out of the payload while None, so receivers that predate
    # them (and forbid unknown keys) still accept it.
    LATE_OPTIONAL: ClassVar[frozenset[str]] = frozenset()


M = TypeVar("M", bound=WireModel)


class TargetInfo(WireModel):
    id: Id
    kind: ProbeKind
    asset: Id
    criticality: Criticality


class Birth(WireModel):
    LATE_OPTIONAL = frozenset({"outbox_fault", "boot_seq"})
    v: Literal[1] = 1
    agent: Id
    site: Id
    epoch: Id
    boot: Id
    ts: Ms
    version: ShortText
    config_hash: ShortText
    heartbeat_interval_s: IntervalS = 60
    targets: Annotated[list[TargetInfo], Field(max_length=MAX_TARGETS)]
    acked_through: Count = 0
    # The first seq this boot writes: the collector tells the boot's events from replayed ones of the boot
    # before it (a restart's monitoring gap). Optional: births from before it validate without it.
    boot_seq: Seq | None = None
    # Set while the agent's outbox cannot be written (disk full): what is wrong and what waits in memory.
    outbox_fault: Annotated[str, _clipper(MAX_FAULT_TEXT)] | None = None


class Death(WireModel):
    v: Literal[1] = 1
    agent: Id
    site: Id
    epoch: Id
    boot: Id
    ts: Ms
    reason: Text


# --- event bodies


class StateChangeBody(WireModel):
    target: Id
    # Agents always send it; a history import may leave it out (the v1 wire table did not list it) and the collector
    # then takes the asset from the target registry of the agent's births, or the target id itself.
    asset: Id | None = None
    from_: State = Field(alias="from")
    to: State
    reason: Text
    cause: Cause | None = None
    at: Ms


class CertExpiry(WireModel):
    """A certificate of the agent's broker link that expires soon (or has expired)."""

    role: Literal["own", "ca", "peer"]
    subject: Annotated[str, _clipper(MAX_SUBJECT_TEXT)]
    not_after: Ms


# A heartbeat's states in JSON as they are (State members are str), not each through Enum.value: that is a Python
# call per target per heartbeat, most of the time the collector spends on heartbeats.
_StatesAsText = PlainSerializer(lambda states: states, return_type=dict[str, str], when_used="json")


class HeartbeatBody(WireModel):
    interval_s: IntervalS
    states: Annotated[dict[Id, State], Field(max_length=MAX_TARGETS), _StatesAsText]
    # Present only while a certificate expires soon: a collector older than this field refuses the key.
    certificates: Annotated[list[CertExpiry], Field(max_length=MAX_CERTIFICATES)] | None = Field(
        default=None, exclude_if=lambda v: v is None
    )
    # The agent's outbox as the heartbeat was made: events not yet acknowledged (the heartbeat itself not
    # counted) and the `ts` of the oldest of them (absent while the outbox is empty). Absent from agents older
    # than these fields; a collector older than them refuses the keys (README, "Wire protocol": upgrade order).
    outbox_depth: Count | None = Field(default=None, exclude_if=lambda v: v is None)
    oldest_unacked_at: Ms | None = Field(default=None, exclude_if=lambda v: v is None)


class MetricsBody(WireModel):
    target: Id
    minute: Ms
    probes: Count
    failures: Count
    latency_p50_ms: Annotated[float, Field(ge=0)] | None = None
    latency_p95_ms: Annotated[float, Field(ge=0)] | None = None
    latency_max_ms: Annotated[float, Field(ge=0)] | None = None


# "configuration": a target never seen working because of how it is configured; plant IT's, never a vendor's.
IncidentKind = Literal["target", "site_link", "configuration"]


class IncidentOpenedBody(WireModel):
    incident: Id
    kind: IncidentKind = "target"
    target: Id | None = None
    asset: Id | None = None
    criticality: Criticality | None = None
    severity: Severity
    state: State
    reason: Text
    cause: Cause | None = None
    in_production: bool | None = None  # agents always say; a history import may not know
    opened_at: Ms
    targets: list[Id] = Field(default_factory=list, max_length=MAX_TARGETS)


class IncidentUpdatedBody(WireModel):
    incident: Id
    severity: Severity
    state: State
    reason: Text
    cause: Cause | None = None
    in_production: bool | None = None
    at: Ms


class IncidentResolvedBody(WireModel):
    incident: Id
    at: Ms
    reason: Text = "recovered"


class ChangeDetectedBody(WireModel):
    target: Id
    asset: Id
    what: ShortText
    old: Text | None
    new: Text
    at: Ms


class VersionObservedBody(WireModel):
    """The version a target reads from its asset now: sent when first read after the agent starts and on every
    change (a target with `report_versions`). Added to v1 as a new event type: a collector must be of this
    release before its agents report versions."""

    target: Id
    asset: Id
    what: Id
    version: ShortText
    at: Ms


class GapBody(WireModel):
    from_seq: Seq
    to_seq: Seq
    count: Count
    reason: Text
    dropped_types: list[ShortText] = Field(default_factory=list, max_length=16)


class _EventBase(WireModel):
    seq: Seq
    ts: Ms


class StateChangeEvent(_EventBase):
    type: Literal["state_change"] = "state_change"
    body: StateChangeBody


class HeartbeatEvent(_EventBase):
    type: Literal["heartbeat"] = "heartbeat"
    body: HeartbeatBody


class MetricsEvent(_EventBase):
    type: Literal["metrics"] = "metrics"
    body: MetricsBody


class IncidentOpenedEvent(_EventBase):
    type: Literal["incident_opened"] = "incident_opened"
    body: IncidentOpenedBody


class IncidentUpdatedEvent(_EventBase):
    type: Literal["incident_updated"] = "incident_updated"
    body: IncidentUpdatedBody


class IncidentResolvedEvent(_EventBase):
    type: Literal["incident_resolved"] = "incident_resolved"
    body: IncidentResolvedBody


class ChangeDetectedEvent(_EventBase):
    type: Literal["change_detected"] = "change_detected"
    body: ChangeDetectedBody


class VersionObservedEvent(_EventBase):
    type: Literal["version_observed"] = "version_observed"
    body: VersionObservedBody


class GapEvent(_EventBase):
    type: Literal["gap"] = "gap"
    body: GapBody


Event = Annotated[
    StateChangeEvent
    | HeartbeatEvent
    | MetricsEvent
    | IncidentOpenedEvent
    | IncidentUpdatedEvent
    | IncidentResolvedEvent
    | ChangeDetectedEvent
    | VersionObservedEvent
    | GapEvent,
    Field(discriminator="type"),
]
EVENT_TYPES = (
    "state_change",
    "heartbeat",
    "metrics",
    "incident_opened",
    "incident_updated",
    "incident_resolved",
    "change_detected",
    "version_observed",
    "gap",
)
# Event types the outbox may drop under pressure (never incidents or state changes).
DROPPABLE_TYPES = frozenset({"metrics", "heartbeat"})

_event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(data: dict[str, Any]) -> Event:
    try:
        return _event_adapter.validate_python(data)
    except ValidationError as exc:
        raise WireError(_short(exc)) from exc


class EventBatch(WireModel):
    v: Literal[1] = 1
    agent: Id
    site: Id
    epoch: Id
    boot: Id
    events: Annotated[list[Event], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]


class Ack(WireModel):
    LATE_OPTIONAL = frozenset({"boot"})
    v: Literal[1] = 1
    epoch: Id
    through: Count
    boot: Id | None = None  # set on the answer to a birth: the boot that birth announced


class CollectorState(WireModel):
    v: Literal[1] = 1
    online: bool
    ts: Ms


class MaintenanceWindowWire(WireModel):
    id: Annotated[str, Field(min_length=1, max_length=MAX_SHORT_TEXT)]
    kind: Literal["maintenance", "change"] = "maintenance"
    start: Ms
    end: Ms
    assets: list[Id] = Field(default_factory=list, max_length=MAX_WINDOWS)
    services: list[Id] = Field(default_factory=list, max_length=MAX_WINDOWS)
    announced_at: Ms
    announced_by: ShortText
    reason: Text = ""
    # Optional (v1 stays compatible): selectors beside named assets and services, and whether the
    # announcement was dated earlier than the collector received it.
    whole_site: bool = False
    lines: list[Id] = Field(default_factory=list, max_length=MAX_WINDOWS)
    asset_classes: list[Criticality] = Field(default_factory=list, max_length=4)
    back_dated: bool = False


class MaintenanceAnnouncement(WireModel):
    v: Literal[1] = 1
    site: Id
    ts: Ms
    windows: Annotated[list[MaintenanceWindowWire], Field(max_length=MAX_WINDOWS)]


def _short(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    more = "" if exc.error_count() <= 3 else f" (+{exc.error_count() - 3} more)"
    return "; ".join(parts) + more


def decode(model: type[M], payload: bytes) -> M:
    """Validate a JSON payload as `model`; raise WireError with a short reason on anything wrong."""
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise WireError(_short(exc)) from exc


def encode(model: WireModel) -> bytes:
    unset = {name for name in model.LATE_OPTIONAL if getattr(model, name) is None}
    return model.model_dump_json(by_alias=True, exclude_none=False, exclude=unset or None).encode()
