"""Wire protocol v1 (README, "Wire protocol"): topics and the msgspec Structs of every MQTT payload.

One definition for both sides: the agent builds and encodes these, the collector decodes them. Times are
integers: milliseconds since the Unix epoch, UTC. Site and agent ids are lower-case. Decoding is strict: a
value of the wrong JSON type (`"12"` for an integer) is refused, never converted (docs/ingest.md). Building a
Struct checks nothing but the text limits (`clip`); `build` checks values from outside as `decode` does.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct, field
from msgspec.structs import force_setattr

from linewarden.domain import Criticality, ProbeKind, Severity, State
from linewarden.errors import WireError
from linewarden.limits import ID_PATTERN, MAX_BATCH_EVENTS, MAX_INTERVAL_S, MAX_TARGETS

PROTOCOL_VERSION = 1
TOPIC_ROOT = "lw/v1"

# Bounds (docs/limits.md; those the configuration checks too are in linewarden/limits.py). Every integer
# fits a BIGINT column; a time is at most the last millisecond of year 9999 (the largest a datetime holds).
BIGINT_MAX = 2**63 - 1
MAX_MS = 253_402_300_799_999
# Text longer than its limit is cut to the limit, ending in TRUNCATED; NUL (which PostgreSQL text cannot hold)
# becomes U+FFFD. Both happen whenever a Struct is made (built or decoded), so the agent's outbox and the
# collector's store see the same.
TRUNCATED = "…[truncated]"
MAX_TEXT = 1000  # reasons, changed values
MAX_SHORT_TEXT = 200  # versions, hashes, names
MAX_FAULT_TEXT = 500  # a birth's outbox_fault
MAX_SUBJECT_TEXT = 256  # a certificate's subject in a heartbeat
MAX_WINDOWS = 1000  # maintenance windows in one announcement, assets or services in one window
MAX_CERTIFICATES = 32  # expiring certificates in one heartbeat
MAX_DROPPED_TYPES = 16  # event types named by one gap


def clip(text: str, limit: int) -> str:
    """`text` with NUL replaced and cut to `limit` characters, the cut marked by TRUNCATED."""
    text = text.replace("\x00", "\ufffd")
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def whole(pattern: str) -> str:
    """A `^…$` pattern matched to the very end: Python's `$` also matches before a final newline."""
    return r"\A(?:" + pattern.removeprefix("^").removesuffix("$") + r")\Z"


_ID_RE = re.compile(whole(ID_PATTERN))

Ms = Annotated[int, Meta(ge=0, le=MAX_MS)]
Id = Annotated[str, Meta(pattern=whole(ID_PATTERN), max_length=64)]
# The ids that make up most of every batch (a metrics target, a heartbeat's states): msgspec checking the pattern
# of each would be nearly half of ingest's decoding time. `decode`, `build` and `parse_event` check them after
# msgspec, once per distinct id (`_check_bulk_ids`).
BulkId = Annotated[str, Meta(max_length=64)]
Seq = Annotated[int, Meta(ge=1, le=BIGINT_MAX)]
Count = Annotated[int, Meta(ge=0, le=BIGINT_MAX)]
IntervalS = Annotated[int, Meta(ge=1, le=MAX_INTERVAL_S)]
# JSON has no infinity, but a number too large for a float would be one: refused by the upper bound.
Latency = Annotated[float, Meta(ge=0, le=sys.float_info.max)]
# A stable cause code beside a human reason: dotted, lower case (`modbus.exception.4`, `http.timeout`).
# Optional on the wire: events from before cause codes decode without it.
CAUSE_PATTERN = r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$"
MAX_CAUSE = 128
Cause = Annotated[str, Meta(pattern=whole(CAUSE_PATTERN), max_length=MAX_CAUSE)]


def is_valid_id(value: str) -> bool:
    return len(value) <= 64 and bool(_ID_RE.match(value))


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


class WireModel(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, gc=False):
    """Base of every payload. kw_only (set on each class: it is not inherited) allows a default before a required
    field, so each Struct has its fields in the wire's order; frozen is repeated for mypy. gc=False: these hold
    no reference cycles, so the garbage collector need not track them."""

    # Optional fields added after v1 shipped: left out of the payload while None, so receivers that predate
    # them (and forbid unknown keys) still accept it.
    LATE_OPTIONAL: ClassVar[frozenset[str]] = frozenset()


class _Texts(WireModel, frozen=True, kw_only=True):
    """A payload with free text: each field of CLIPPED (name, limit) is clipped when the Struct is made."""

    CLIPPED: ClassVar[tuple[tuple[str, int], ...]] = ()

    def __post_init__(self) -> None:
        for name, limit in self.CLIPPED:
            text = getattr(self, name)
            if text is not None and (len(text) > limit or "\x00" in text):
                force_setattr(self, name, clip(text, limit))


M = TypeVar("M", bound=WireModel)


class TargetInfo(WireModel, frozen=True, kw_only=True):
    id: Id
    kind: ProbeKind
    asset: Id
    criticality: Criticality


class Birth(_Texts, frozen=True, kw_only=True):
    LATE_OPTIONAL = frozenset({"outbox_fault", "boot_seq"})
    CLIPPED = (("version", MAX_SHORT_TEXT), ("config_hash", MAX_SHORT_TEXT), ("outbox_fault", MAX_FAULT_TEXT))
    v: Literal[1] = 1
    agent: Id
    site: Id
    epoch: Id
    boot: Id
    ts: Ms
    version: str
    config_hash: str
    heartbeat_interval_s: IntervalS = 60
    targets: Annotated[list[TargetInfo], Meta(max_length=MAX_TARGETS)]
    acked_through: Count = 0
    # The first seq this boot writes: the collector tells the boot's events from replayed ones of the boot
    # before it (a restart's monitoring gap). Optional: births from before it decode without it.
    boot_seq: Seq | None = None
    # Set while the agent's outbox cannot be written (disk full): what is wrong and what waits in memory.
    outbox_fault: str | None = None


class Death(_Texts, frozen=True, kw_only=True):
    CLIPPED = (("reason", MAX_TEXT),)
    v: Literal[1] = 1
    agent: Id
    site: Id
    epoch: Id
    boot: Id
    ts: Ms
    reason: str


# --- event bodies


class StateChangeBody(_Texts, frozen=True, kw_only=True):
    CLIPPED = (("reason", MAX_TEXT),)
    target: Id
    # Agents always send it; a history import may leave it out (the v1 wire table did not list it) and the collector
    # then takes the asset from the target registry of the agent's births, or the target id itself.
    asset: Id | None = None
    from_: State = field(name="from")
    to: State
    reason: str
    cause: Cause | None = None
    at: Ms


class CertExpiry(_Texts, frozen=True, kw_only=True):
    """A certificate of the agent's broker link that expires soon (or has expired)."""

    CLIPPED = (("subject", MAX_SUBJECT_TEXT),)
    role: Literal["own", "ca", "peer"]
    subject: str
    not_after: Ms


class HeartbeatBody(WireModel, frozen=True, kw_only=True, omit_defaults=True):
    # omit_defaults: the fields that have a default (None) are left out of the payload while None.
    interval_s: IntervalS
    states: Annotated[dict[BulkId, State], Meta(max_length=MAX_TARGETS)]
    # Present only while a certificate expires soon: a collector older than this field refuses the key.
    certificates: Annotated[list[CertExpiry], Meta(max_length=MAX_CERTIFICATES)] | None = None
    # The agent's outbox as the heartbeat was made: events not yet acknowledged (the heartbeat itself not
    # counted) and the `ts` of the oldest of them (absent while the outbox is empty). Absent from agents older
    # than these fields; a collector older than them refuses the keys (README, "Wire protocol": upgrade order).
    outbox_depth: Count | None = None
    oldest_unacked_at: Ms | None = None


class MetricsBody(WireModel, frozen=True, kw_only=True):
    target: BulkId
    minute: Ms
    probes: Count
    failures: Count
    latency_p50_ms: Latency | None = None
    latency_p95_ms: Latency | None = None
    latency_max_ms: Latency | None = None


# "configuration": a target never seen working because of how it is configured; plant IT's, never a vendor's.
IncidentKind = Literal["target", "site_link", "configuration"]


class IncidentOpenedBody(_Texts, frozen=True, kw_only=True):
    CLIPPED = (("reason", MAX_TEXT),)
    incident: Id
    kind: IncidentKind = "target"
    target: Id | None = None
    asset: Id | None = None
    criticality: Criticality | None = None
    severity: Severity
    state: State
    reason: str
    cause: Cause | None = None
    in_production: bool | None = None  # agents always say; a history import may not know
    opened_at: Ms
    targets: Annotated[list[Id], Meta(max_length=MAX_TARGETS)] = []


class IncidentUpdatedBody(_Texts, frozen=True, kw_only=True):
    CLIPPED = (("reason", MAX_TEXT),)
    incident: Id
    severity: Severity
    state: State
    reason: str
    cause: Cause | None = None
    in_production: bool | None = None
    at: Ms


class IncidentResolvedBody(_Texts, frozen=True, kw_only=True):
    CLIPPED = (("reason", MAX_TEXT),)
    incident: Id
    at: Ms
    reason: str = "recovered"


class ChangeDetectedBody(_Texts, frozen=True, kw_only=True):
    CLIPPED = (("what", MAX_SHORT_TEXT), ("old", MAX_TEXT), ("new", MAX_TEXT))
    target: Id
    asset: Id
    what: str
    old: str | None
    new: str
    at: Ms


class VersionObservedBody(_Texts, frozen=True, kw_only=True):
    """The version a target reads from its asset now: sent when first read after the agent starts and on every
    change (a target with `report_versions`). Added to v1 as a new event type: a collector must be of this
    release before its agents report versions."""

    CLIPPED = (("version", MAX_SHORT_TEXT),)
    target: Id
    asset: Id
    what: Id
    version: str
    at: Ms


class GapBody(_Texts, frozen=True, kw_only=True):
    CLIPPED = (("reason", MAX_TEXT),)
    from_seq: Seq
    to_seq: Seq
    count: Count
    reason: str
    dropped_types: Annotated[list[str], Meta(max_length=MAX_DROPPED_TYPES)] = []

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(len(t) > MAX_SHORT_TEXT or "\x00" in t for t in self.dropped_types):
            force_setattr(self, "dropped_types", [clip(t, MAX_SHORT_TEXT) for t in self.dropped_types])


class _EventBase(WireModel, frozen=True, kw_only=True, tag_field="type"):
    """An event, told by its `type` (the Struct's tag; msgspec writes it first)."""

    type: ClassVar[str]
    seq: Seq
    ts: Ms


class StateChangeEvent(_EventBase, frozen=True, kw_only=True, tag="state_change"):
    type: ClassVar[Literal["state_change"]] = "state_change"
    body: StateChangeBody


class HeartbeatEvent(_EventBase, frozen=True, kw_only=True, tag="heartbeat"):
    type: ClassVar[Literal["heartbeat"]] = "heartbeat"
    body: HeartbeatBody


class MetricsEvent(_EventBase, frozen=True, kw_only=True, tag="metrics"):
    type: ClassVar[Literal["metrics"]] = "metrics"
    body: MetricsBody


class IncidentOpenedEvent(_EventBase, frozen=True, kw_only=True, tag="incident_opened"):
    type: ClassVar[Literal["incident_opened"]] = "incident_opened"
    body: IncidentOpenedBody


class IncidentUpdatedEvent(_EventBase, frozen=True, kw_only=True, tag="incident_updated"):
    type: ClassVar[Literal["incident_updated"]] = "incident_updated"
    body: IncidentUpdatedBody


class IncidentResolvedEvent(_EventBase, frozen=True, kw_only=True, tag="incident_resolved"):
    type: ClassVar[Literal["incident_resolved"]] = "incident_resolved"
    body: IncidentResolvedBody


class ChangeDetectedEvent(_EventBase, frozen=True, kw_only=True, tag="change_detected"):
    type: ClassVar[Literal["change_detected"]] = "change_detected"
    body: ChangeDetectedBody


class VersionObservedEvent(_EventBase, frozen=True, kw_only=True, tag="version_observed"):
    type: ClassVar[Literal["version_observed"]] = "version_observed"
    body: VersionObservedBody


class GapEvent(_EventBase, frozen=True, kw_only=True, tag="gap"):
    type: ClassVar[Literal["gap"]] = "gap"
    body: GapBody


Event = (
    StateChangeEvent
    | HeartbeatEvent
    | MetricsEvent
    | IncidentOpenedEvent
    | IncidentUpdatedEvent
    | IncidentResolvedEvent
    | ChangeDetectedEvent
    | VersionObservedEvent
    | GapEvent
)
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


class EventBatch(WireModel, frozen=True, kw_only=True):
    v: Literal[1] = 1
    agent: Id
    site: Id
    epoch: Id
    boot: Id
    events: Annotated[list[Event], Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]


class Ack(WireModel, frozen=True, kw_only=True):
    LATE_OPTIONAL = frozenset({"boot"})
    v: Literal[1] = 1
    epoch: Id
    through: Count
    boot: Id | None = None  # set on the answer to a birth: the boot that birth announced


class CollectorState(WireModel, frozen=True, kw_only=True):
    v: Literal[1] = 1
    online: bool
    ts: Ms


class MaintenanceWindowWire(_Texts, frozen=True, kw_only=True):
    CLIPPED = (("announced_by", MAX_SHORT_TEXT), ("reason", MAX_TEXT))
    id: Annotated[str, Meta(min_length=1, max_length=MAX_SHORT_TEXT)]
    kind: Literal["maintenance", "change"] = "maintenance"
    start: Ms
    end: Ms
    assets: Annotated[list[Id], Meta(max_length=MAX_WINDOWS)] = []
    services: Annotated[list[Id], Meta(max_length=MAX_WINDOWS)] = []
    announced_at: Ms
    announced_by: str
    reason: str = ""
    # Optional (v1 stays compatible): selectors beside named assets and services, and whether the
    # announcement was dated earlier than the collector received it.
    whole_site: bool = False
    lines: Annotated[list[Id], Meta(max_length=MAX_WINDOWS)] = []
    asset_classes: Annotated[list[Criticality], Meta(max_length=4)] = []
    back_dated: bool = False


class MaintenanceAnnouncement(WireModel, frozen=True, kw_only=True):
    v: Literal[1] = 1
    site: Id
    ts: Ms
    windows: Annotated[list[MaintenanceWindowWire], Meta(max_length=MAX_WINDOWS)]


# ---------------------------------------------------------------- decoding and encoding

_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}
_encoder = msgspec.json.Encoder()


_PATTERN_NAMES = {
    f"regex {whole(ID_PATTERN)!r}": f"an id {ID_PATTERN}",
    f"regex {whole(CAUSE_PATTERN)!r}": "a cause code",
}


def _reason(exc: msgspec.MsgspecError | RecursionError) -> str:
    """msgspec's message, the first thing wrong (`Expected `int`, got `str` - at `$.events[0].seq``), with an id's
    pattern named: short enough for a dead letter."""
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    text = str(exc)
    for pattern, name in _PATTERN_NAMES.items():
        text = text.replace(pattern, name)
    return text


# Bulk ids seen to match the pattern. Bounded: a sender of ever new ids only empties it.
_valid_ids: set[str] = set()
_MAX_VALID_IDS = 20_000


def _bodies(value: object) -> list[object]:
    """The bodies in `value` that may hold bulk ids (of metrics and heartbeats), or `value` itself."""
    if isinstance(value, EventBatch):
        return [e.body for e in value.events]
    return [value.body] if isinstance(value, MetricsEvent | HeartbeatEvent) else [value]


def _where(value: object, bad: str) -> str:
    """Where in `value` the bulk id `bad` is, as msgspec names a place."""
    prefix = (
        "$.events[{}].body" if isinstance(value, EventBatch) else "$.body" if isinstance(value, _EventBase) else "$"
    )
    for i, body in enumerate(_bodies(value)):
        if isinstance(body, MetricsBody) and body.target == bad:
            return f"`{prefix.format(i)}.target`"
        if isinstance(body, HeartbeatBody) and bad in body.states:
            return f"key in `{prefix.format(i)}.states`"
    return "`$`"


def _check_bulk_ids(value: object) -> None:
    """Raise WireError for a BulkId that does not match the id pattern (checked once per distinct id)."""
    ids: set[str] = set()
    for body in _bodies(value):
        if type(body) is MetricsBody:
            ids.add(body.target)
        elif type(body) is HeartbeatBody:
            ids.update(body.states)
    new = ids - _valid_ids
    if not new:
        return
    for bad in (i for i in new if not _ID_RE.match(i)):
        raise WireError(f"Expected `str` matching an id {ID_PATTERN} - at {_where(value, bad)}")
    if len(_valid_ids) + len(new) > _MAX_VALID_IDS:
        _valid_ids.clear()
    _valid_ids.update(new)


def decode(model: type[M], payload: bytes) -> M:
    """Validate a JSON payload as `model`; raise WireError with a short reason on anything wrong."""
    decoder = _decoders.get(model)
    if decoder is None:
        decoder = _decoders[model] = msgspec.json.Decoder(model)
    try:
        result: M = decoder.decode(payload)
    except (msgspec.MsgspecError, RecursionError) as exc:
        raise WireError(_reason(exc)) from None
    _check_bulk_ids(result)
    return result


def build(model: type[M], fields: Mapping[str, Any]) -> M:
    """`model` from Python values (keys as on the wire: `from`), checked as `decode` checks a payload: for values
    from outside (a form, a command line, an import file). Raises WireError with a short reason."""
    try:
        result = msgspec.convert(fields, model)
    except (msgspec.MsgspecError, RecursionError) as exc:
        raise WireError(_reason(exc)) from None
    _check_bulk_ids(result)
    return result


def parse_event(data: Mapping[str, Any]) -> Event:
    """One event (`seq`, `ts`, `type`, `body`) from Python values; raises WireError."""
    try:
        event: Event = msgspec.convert(data, Event)
    except (msgspec.MsgspecError, RecursionError) as exc:
        raise WireError(_reason(exc)) from None
    _check_bulk_ids(event)
    return event


def encode(model: WireModel) -> bytes:
    if model.LATE_OPTIONAL:
        data = msgspec.to_builtins(model)
        for name in model.LATE_OPTIONAL:
            if data[name] is None:
                del data[name]
        return _encoder.encode(data)
    return _encoder.encode(model)
