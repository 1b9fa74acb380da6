"""A second decoder for the bulk of what agents send: event batches of heartbeats, metrics and state changes.

The wire models (linewarden/wire.py, pydantic) define the protocol. This module mirrors the models that make
up nearly every batch as msgspec Structs, which decode and serialise several times faster (docs/ingest.md,
"The fast decoder"). It may only accept what pydantic accepts, and must then give what pydantic gives: the
same values and the same body JSON, byte for byte. tests/unit/test_fastwire.py checks both against pydantic on
generated and mutated payloads, and checks that the mirrors have the models' fields in the models' order.

`decode_batch` returns None for anything it does not take, and the caller decodes the message with pydantic,
which then gives the event batch, or the dead letter and its reason. It does not take:
- an event type other than the three it mirrors;
- a text pydantic would change: one holding NUL, or one longer than its limit;
- a value pydantic coerces: "12" or 12.0 or true for an integer, a string for a float, `true` for `v`;
- a float of 1e16 or more (pydantic writes 1e+16, msgspec 1e16);
- a field spelled by its Python name (`from_`), which pydantic also accepts;
- a key given twice whose first value is bad (pydantic keeps the last one only);
- JSON that msgspec refuses to parse (pydantic may still accept some of it, or refuse it with its own reason).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, ClassVar, Literal

import msgspec
from msgspec import Meta, Struct

from linewarden.domain import State
from linewarden.wire import (
    BIGINT_MAX,
    CAUSE_PATTERN,
    ID_PATTERN,
    MAX_BATCH_EVENTS,
    MAX_CAUSE,
    MAX_CERTIFICATES,
    MAX_INTERVAL_S,
    MAX_MS,
    MAX_SUBJECT_TEXT,
    MAX_TARGETS,
    MAX_TEXT,
    Event,
)


def _whole(pattern: str) -> str:
    """A wire pattern (`^…$`, matched by pydantic's Rust regex, where `$` is the very end) for Python's `re`, where
    `$` also matches before a final newline."""
    return r"\A(?:" + pattern.removeprefix("^").removesuffix("$") + r")\Z"


# An id's pattern is checked after decoding, once per distinct id (`_ids_valid`): as a msgspec pattern it is a
# regular expression search per id, a third of the decoding time.
_Id = Annotated[str, Meta(max_length=64)]
_Ms = Annotated[int, Meta(ge=0, le=MAX_MS)]
_Seq = Annotated[int, Meta(ge=1, le=BIGINT_MAX)]
_Count = Annotated[int, Meta(ge=0, le=BIGINT_MAX)]
_IntervalS = Annotated[int, Meta(ge=1, le=MAX_INTERVAL_S)]
# Texts pydantic keeps as they are: no NUL, not over the limit (it would replace or cut them).
_NO_NUL = r"\A[^\x00]*\Z"
_Text = Annotated[str, Meta(max_length=MAX_TEXT, pattern=_NO_NUL)]
_Subject = Annotated[str, Meta(max_length=MAX_SUBJECT_TEXT, pattern=_NO_NUL)]
_Cause = Annotated[str, Meta(max_length=MAX_CAUSE, pattern=_whole(CAUSE_PATTERN))]
_Latency = Annotated[float, Meta(ge=0, lt=1e16)]


class _Wire(Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """Each mirror has its model's fields in the model's order. kw_only, set on each class (it is not inherited),
    allows a default before a required field; frozen is repeated for mypy. gc=False: these hold no reference
    cycles, so the garbage collector need not track them."""


class FastStateChangeBody(_Wire, frozen=True, kw_only=True):
    target: _Id
    asset: _Id | None = None
    from_: State = msgspec.field(name="from")
    to: State
    reason: _Text
    cause: _Cause | None = None
    at: _Ms


class FastCertExpiry(_Wire, frozen=True, kw_only=True):
    role: Literal["own", "ca", "peer"]
    subject: _Subject
    not_after: _Ms


class FastHeartbeatBody(_Wire, frozen=True, kw_only=True, omit_defaults=True):
    # omit_defaults leaves out the fields that are None, as the model's exclude_if does; the others have no default
    interval_s: _IntervalS
    states: Annotated[dict[_Id, State], Meta(max_length=MAX_TARGETS)]
    certificates: Annotated[list[FastCertExpiry], Meta(max_length=MAX_CERTIFICATES)] | None = None
    outbox_depth: _Count | None = None
    oldest_unacked_at: _Ms | None = None


class FastMetricsBody(_Wire, frozen=True, kw_only=True):
    target: _Id
    minute: _Ms
    probes: _Count
    failures: _Count
    latency_p50_ms: _Latency | None = None
    latency_p95_ms: _Latency | None = None
    latency_max_ms: _Latency | None = None


class _FastEvent(_Wire, frozen=True, kw_only=True, tag_field="type"):
    seq: _Seq
    ts: _Ms


class FastStateChangeEvent(_FastEvent, frozen=True, kw_only=True, tag="state_change"):
    type: ClassVar[Literal["state_change"]] = "state_change"
    body: FastStateChangeBody


class FastHeartbeatEvent(_FastEvent, frozen=True, kw_only=True, tag="heartbeat"):
    type: ClassVar[Literal["heartbeat"]] = "heartbeat"
    body: FastHeartbeatBody


class FastMetricsEvent(_FastEvent, frozen=True, kw_only=True, tag="metrics"):
    type: ClassVar[Literal["metrics"]] = "metrics"
    body: FastMetricsBody


FastEvent = FastStateChangeEvent | FastHeartbeatEvent | FastMetricsEvent
# An event as ingest holds it: decoded by pydantic, or by this module.
AnyEvent = Event | FastEvent


class FastBatch(_Wire, frozen=True, kw_only=True):
    v: Literal[1] = 1
    agent: _Id
    site: _Id
    epoch: _Id
    boot: _Id
    events: Annotated[list[FastEvent], Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]


_decoder = msgspec.json.Decoder(FastBatch)
_encode = msgspec.json.Encoder().encode
_ID = re.compile(_whole(ID_PATTERN))
# Ids seen to match the pattern. Bounded: a sender of ever new ids only empties it.
_valid_ids: set[str] = set()
_MAX_VALID_IDS = 20_000


def decode_batch(payload: bytes) -> FastBatch | None:
    """The batch, when this decoder takes it; None: decode it with pydantic (`linewarden.wire.decode`)."""
    try:
        batch = _decoder.decode(payload)
    except (msgspec.MsgspecError, RecursionError):
        return None
    return batch if _ids_valid(batch) else None


def _ids_valid(batch: FastBatch) -> bool:
    ids = {batch.agent, batch.site, batch.epoch, batch.boot}
    for e in batch.events:
        if isinstance(e, FastMetricsEvent):
            ids.add(e.body.target)
        elif isinstance(e, FastHeartbeatEvent):
            ids.update(e.body.states)
        else:
            ids.add(e.body.target)
            if e.body.asset is not None:
                ids.add(e.body.asset)
    new = ids - _valid_ids
    if not new:
        return True
    if not all(map(_ID.match, new)):
        return False
    if len(_valid_ids) + len(new) > _MAX_VALID_IDS:
        _valid_ids.clear()
    _valid_ids.update(new)
    return True


def body_texts(events: Sequence[AnyEvent]) -> list[str]:
    """Each event's body as its wire JSON (the `events.body` column): pydantic's, or the same text by msgspec."""
    return [
        _encode(e.body).decode()
        if isinstance(e, _FastEvent)
        else e.body.__pydantic_serializer__.to_json(e.body, by_alias=True).decode()
        for e in events
    ]


def event_json(e: AnyEvent) -> bytes:
    """The whole event as pydantic's `model_dump_json(by_alias=True)` gives it (a dead letter's payload)."""
    if isinstance(e, _FastEvent):
        return b'{"seq":%d,"ts":%d,"type":"%s","body":%s}' % (e.seq, e.ts, e.type.encode(), _encode(e.body))
    return e.model_dump_json(by_alias=True).encode()
