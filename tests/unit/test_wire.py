"""The wire Structs (linewarden/wire.py): the decoder accepts exactly what the protocol allows (docs/limits.md), and
writes the JSON the previous version (pydantic models) wrote, byte for byte, so agents and collectors of both
versions interoperate."""

from __future__ import annotations

import json
import math
import random
import re
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz_wire import MUTATIONS, from_schema, json_paths, mutate
from linewarden.domain import Criticality, ProbeKind, Severity, State
from linewarden.errors import WireError
from linewarden.wire import (
    BIGINT_MAX,
    MAX_MS,
    MAX_TEXT,
    TRUNCATED,
    Ack,
    Birth,
    CertExpiry,
    ChangeDetectedBody,
    CollectorState,
    Death,
    EventBatch,
    GapBody,
    GapEvent,
    HeartbeatBody,
    HeartbeatEvent,
    IncidentOpenedBody,
    IncidentResolvedBody,
    IncidentUpdatedBody,
    MaintenanceAnnouncement,
    MaintenanceWindowWire,
    MetricsBody,
    MetricsEvent,
    StateChangeBody,
    StateChangeEvent,
    TargetInfo,
    VersionObservedBody,
    WireModel,
    build,
    decode,
    encode,
)

T = 1_767_225_600_000

# ---------------------------------------------------------------- the previous version's JSON

# What the previous version (pydantic models) wrote for these messages: `encode()` of each, run on that version.
# The case builds each the same way on both versions.
PREVIOUS: dict[str, tuple[WireModel, str]] = {
    "birth": (
        Birth(agent="a1", site="plant1", epoch="e1", boot="b1", ts=T, version="0.1.0", config_hash="abc",
              targets=[TargetInfo(id="plc-1", kind=ProbeKind.MODBUS, asset="line3-plc",
                                  criticality=Criticality.HIGH)]),
        '{"v":1,"agent":"a1","site":"plant1","epoch":"e1","boot":"b1","ts":1767225600000,"version":"0.1.0",'
        '"config_hash":"abc","heartbeat_interval_s":60,"targets":[{"id":"plc-1","kind":"modbus","asset":"line3-plc",'
        '"criticality":"high"}],"acked_through":0}',
    ),
    "birth, late optional fields": (
        Birth(agent="a1", site="plant1", epoch="e1", boot="b1", ts=T, version="0.1.0", config_hash="abc",
              heartbeat_interval_s=30, targets=[], acked_through=7, boot_seq=8, outbox_fault="disk full: é"),
        '{"v":1,"agent":"a1","site":"plant1","epoch":"e1","boot":"b1","ts":1767225600000,"version":"0.1.0",'
        '"config_hash":"abc","heartbeat_interval_s":30,"targets":[],"acked_through":7,"boot_seq":8,'
        '"outbox_fault":"disk full: é"}',
    ),
    "death": (
        Death(agent="a1", site="plant1", epoch="e1", boot="b1", ts=T, reason="stopped"),
        '{"v":1,"agent":"a1","site":"plant1","epoch":"e1","boot":"b1","ts":1767225600000,"reason":"stopped"}',
    ),
    "state change": (
        StateChangeBody(target="plc-1", asset="line3-plc", from_=State.UP, to=State.DOWN,
                        reason='timeout \u2028 "q" \\ é 😀 \x1f', cause="modbus.timeout", at=T),
        '{"target":"plc-1","asset":"line3-plc","from":"UP","to":"DOWN","reason":"timeout \u2028 \\"q\\" \\\\ é 😀 '
        '\\u001f","cause":"modbus.timeout","at":1767225600000}',
    ),
    "state change, no asset": (
        StateChangeBody(target="plc-1", from_=State.UNKNOWN, to=State.UP, reason="ok", at=T),
        '{"target":"plc-1","asset":null,"from":"UNKNOWN","to":"UP","reason":"ok","cause":null,"at":1767225600000}',
    ),
    "heartbeat": (
        HeartbeatBody(interval_s=60, states={"plc-1": State.UP, "b": State.DEGRADED}),
        '{"interval_s":60,"states":{"plc-1":"UP","b":"DEGRADED"}}',
    ),
    "heartbeat, every field": (
        HeartbeatBody(interval_s=60, states={}, certificates=[CertExpiry(role="own", subject="CN=a1", not_after=T)],
                      outbox_depth=0, oldest_unacked_at=T),
        '{"interval_s":60,"states":{},"certificates":[{"role":"own","subject":"CN=a1","not_after":1767225600000}],'
        '"outbox_depth":0,"oldest_unacked_at":1767225600000}',
    ),
    "metrics": (
        MetricsBody(target="plc-1", minute=T, probes=60, failures=1, latency_p50_ms=1.25, latency_p95_ms=0.0,
                    latency_max_ms=12345.678),
        '{"target":"plc-1","minute":1767225600000,"probes":60,"failures":1,"latency_p50_ms":1.25,'
        '"latency_p95_ms":0.0,"latency_max_ms":12345.678}',
    ),
    "metrics, no latency": (
        MetricsBody(target="plc-1", minute=T, probes=0, failures=0),
        '{"target":"plc-1","minute":1767225600000,"probes":0,"failures":0,"latency_p50_ms":null,'
        '"latency_p95_ms":null,"latency_max_ms":null}',
    ),
    "incident opened": (
        IncidentOpenedBody(incident="i1", severity=Severity.S2, state=State.DOWN, reason="r", opened_at=T,
                           targets=["plc-1"], target="plc-1", asset="x", criticality=Criticality.LOW,
                           in_production=True, cause="x.y"),
        '{"incident":"i1","kind":"target","target":"plc-1","asset":"x","criticality":"low","severity":"S2",'
        '"state":"DOWN","reason":"r","cause":"x.y","in_production":true,"opened_at":1767225600000,'
        '"targets":["plc-1"]}',
    ),
    "incident opened, site link": (
        IncidentOpenedBody(incident="i1", kind="site_link", severity=Severity.S1, state=State.DOWN, reason="r",
                           opened_at=T),
        '{"incident":"i1","kind":"site_link","target":null,"asset":null,"criticality":null,"severity":"S1",'
        '"state":"DOWN","reason":"r","cause":null,"in_production":null,"opened_at":1767225600000,"targets":[]}',
    ),
    "incident updated": (
        IncidentUpdatedBody(incident="i1", severity=Severity.S1, state=State.DEGRADED, reason="r", at=T),
        '{"incident":"i1","severity":"S1","state":"DEGRADED","reason":"r","cause":null,"in_production":null,'
        '"at":1767225600000}',
    ),
    "incident resolved": (
        IncidentResolvedBody(incident="i1", at=T),
        '{"incident":"i1","at":1767225600000,"reason":"recovered"}',
    ),
    "change detected": (
        ChangeDetectedBody(target="t", asset="a", what="firmware", old=None, new="2", at=T),
        '{"target":"t","asset":"a","what":"firmware","old":null,"new":"2","at":1767225600000}',
    ),
    "version observed": (
        VersionObservedBody(target="t", asset="a", what="firmware", version="1.2", at=T),
        '{"target":"t","asset":"a","what":"firmware","version":"1.2","at":1767225600000}',
    ),
    "gap": (
        GapBody(from_seq=1, to_seq=5, count=5, reason="outbox full", dropped_types=["metrics"]),
        '{"from_seq":1,"to_seq":5,"count":5,"reason":"outbox full","dropped_types":["metrics"]}',
    ),
    "ack": (Ack(epoch="e1", through=5), '{"v":1,"epoch":"e1","through":5}'),
    "ack to a birth": (Ack(epoch="e1", through=5, boot="b1"), '{"v":1,"epoch":"e1","through":5,"boot":"b1"}'),
    "collector state": (CollectorState(online=True, ts=T), '{"v":1,"online":true,"ts":1767225600000}'),
    "maintenance announcement": (
        MaintenanceAnnouncement(site="plant1", ts=T, windows=[MaintenanceWindowWire(
            id="w-1", start=T, end=T + 1, assets=["a"], announced_at=T, announced_by="me",
            asset_classes=[Criticality.HIGH])]),
        '{"v":1,"site":"plant1","ts":1767225600000,"windows":[{"id":"w-1","kind":"maintenance",'
        '"start":1767225600000,"end":1767225600001,"assets":["a"],"services":[],"announced_at":1767225600000,'
        '"announced_by":"me","reason":"","whole_site":false,"lines":[],"asset_classes":["high"],'
        '"back_dated":false}]}',
    ),
    "clipped text": (
        StateChangeBody(target="t", from_=State.UP, to=State.DOWN, reason="x\0" * 600, at=T),
        '{"target":"t","asset":null,"from":"UP","to":"DOWN","reason":"' + "x\ufffd" * 494 + TRUNCATED
        + '","cause":null,"at":1767225600000}',
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(PREVIOUS))
def test_each_message_is_written_as_the_previous_version_wrote_it(name: str) -> None:
    message, previous = PREVIOUS[name]
    assert encode(message).decode() == previous
    assert decode(type(message), previous.encode()) == message


def test_an_event_is_read_in_the_previous_versions_key_order_and_written_with_its_type_first() -> None:
    body = StateChangeBody(target="plc-1", from_=State.UP, to=State.DOWN, reason="r", at=T)
    previous = b'{"seq":1,"ts":2,"type":"state_change","body":' + encode(body) + b"}"  # the agent's batches
    event = StateChangeEvent(seq=1, ts=2, body=body)
    assert decode(StateChangeEvent, previous) == event
    assert encode(event) == b'{"type":"state_change","seq":1,"ts":2,"body":' + encode(body) + b"}"


# ---------------------------------------------------------------- the protocol's limits, written out

ID = re.compile(r"[a-z0-9][a-z0-9_-]*")
CAUSE = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
STATES = {"UP", "DOWN", "DEGRADED", "UNKNOWN"}


def _int(v: Any, low: int, high: int) -> bool:
    return type(v) is int and low <= v <= high


def _text(v: Any) -> bool:
    """Any text: one too long is cut, a NUL replaced. It must be Unicode (no lone surrogate)."""
    if not isinstance(v, str):
        return False
    try:
        v.encode()
    except UnicodeEncodeError:
        return False
    return True


def _id(v: Any) -> bool:
    return _text(v) and len(v) <= 64 and ID.fullmatch(v) is not None


def _ms(v: Any) -> bool:
    return _int(v, 0, MAX_MS)


def _seq(v: Any) -> bool:
    return _int(v, 1, BIGINT_MAX)


def _count(v: Any) -> bool:
    return _int(v, 0, BIGINT_MAX)


def _latency(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v) and v >= 0


def _state(v: Any) -> bool:
    return isinstance(v, str) and v in STATES


def _optional(check: Any) -> Any:
    return lambda v: v is None or check(v)


def _list(check: Any, high: int, low: int = 0) -> Any:
    return lambda v: type(v) is list and low <= len(v) <= high and all(map(check, v))


def _object(required: dict[str, Any], optional: dict[str, Any]) -> Any:
    def check(v: Any) -> bool:
        if type(v) is not dict or not required.keys() <= v.keys() or not v.keys() <= required.keys() | optional:
            return False
        return all({**required, **optional}[k](x) for k, x in v.items())

    return check


_CERT = _object(
    {"role": lambda v: isinstance(v, str) and v in ("own", "ca", "peer"), "subject": _text, "not_after": _ms}, {}
)
_BODIES = {
    "metrics": _object(
        {"target": _id, "minute": _ms, "probes": _count, "failures": _count},
        {f"latency_{q}_ms": _optional(_latency) for q in ("p50", "p95", "max")},
    ),
    "heartbeat": _object(
        {
            "interval_s": lambda v: _int(v, 1, 86_400),
            "states": lambda v: (
                type(v) is dict and len(v) <= 2000 and all(map(_id, v)) and all(map(_state, v.values()))
            ),
        },
        {
            "certificates": _optional(_list(_CERT, 32)),
            "outbox_depth": _optional(_count),
            "oldest_unacked_at": _optional(_ms),
        },
    ),
    "state_change": _object(
        {"target": _id, "from": _state, "to": _state, "reason": _text, "at": _ms},
        {"asset": _optional(_id), "cause": _optional(lambda v: _text(v) and len(v) <= 128 and CAUSE.fullmatch(v))},
    ),
    "gap": _object(
        {"from_seq": _seq, "to_seq": _seq, "count": _count, "reason": _text}, {"dropped_types": _list(_text, 16)}
    ),
}


def _event(v: Any) -> bool:
    if type(v) is not dict or not isinstance(v.get("type"), str) or v["type"] not in _BODIES:
        return False
    rest = {k: x for k, x in v.items() if k != "type"}
    return bool(_object({"seq": _seq, "ts": _ms, "body": _BODIES[v["type"]]}, {})(rest))


_BATCH = _object(
    {"agent": _id, "site": _id, "epoch": _id, "boot": _id, "events": _list(_event, 10_000, low=1)},
    {"v": lambda v: _int(v, 1, 1)},
)


def _allowed(payload: bytes) -> bool | None:
    """Whether the protocol allows the batch; None: JSON with a key given twice (the limits say nothing of it)."""
    twice = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal twice
        twice |= len({k for k, _ in items}) < len(items)
        return dict(items)

    try:
        doc = json.loads(payload, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return False
    return None if twice else bool(_BATCH(doc))


def _clipped(decoded: Any) -> None:
    """Every text of a decoded message within its limit and without NUL."""
    for _, value in json_paths(msgspec.to_builtins(decoded)):
        if isinstance(value, str):
            assert "\0" not in value and len(value) <= MAX_TEXT, value[:80]


def _check(payload: bytes) -> bool:
    """The property; whether the decoder took the payload."""
    allowed = _allowed(payload)
    try:
        batch = decode(EventBatch, payload)
    except WireError:
        assert allowed is not True, f"refused what the protocol allows: {payload[:300]!r}"
        return False
    assert allowed is not False, f"accepted what the protocol does not allow: {payload[:300]!r}"
    _clipped(batch)
    assert decode(EventBatch, encode(batch)) == batch
    return True


IDS = ("plc-1", "t00", "a", "x_y-9", "0")
# Values on a bound, just past one, or of a near type: spliced into generated documents.
TRICKY: tuple[Any, ...] = (
    0, -1, 1, MAX_MS, MAX_MS + 1, BIGINT_MAX, BIGINT_MAX + 1, 86_400, 86_401, 1.0, 12.5, -0.0, 1e16, 1e308,
    2**53 + 1, 5e-324, "12", "1.5", True, False, None, "", "UP", "up", "DOWN", "a" * 64, "a" * 65, "plc-1\n",
    "Plc-1", "-x", "\0", "x\0y", "é" * (MAX_TEXT + 1), "\ud800", "\u2028\x7f\x1f\"\\/", "modbus.exception.4",
    "bad..cause", [], {},
)  # fmt: skip
NUMBER_TEXT = st.from_regex(r"\A-?(0|[1-9][0-9]{0,18})(\.[0-9]{1,25})?([eE][-+]?[0-9]{1,3})?\Z")
_MARK = "\u2063number-here\u2063"


def _strategy(model: type[WireModel]) -> st.SearchStrategy[Any]:
    schema = msgspec.json.schema(model)
    return from_schema(schema, schema.get("$defs", {}))


def _states() -> st.SearchStrategy[dict[str, Any]]:
    keys = st.one_of(st.sampled_from(IDS), st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,8}\Z"), st.text(max_size=4))
    values = st.one_of(st.sampled_from(sorted(STATES)), st.sampled_from(["up", 1, None]))
    return st.dictionaries(keys, values, max_size=4)


def _with_states(event: dict[str, Any], states: dict[str, Any]) -> dict[str, Any]:
    if event.get("type") == "heartbeat" and isinstance(event.get("body"), dict):
        event["body"]["states"] = states
    return event


EVENTS = st.one_of(
    _strategy(MetricsEvent),
    _strategy(MetricsEvent),
    st.builds(_with_states, _strategy(HeartbeatEvent), _states()),
    _strategy(StateChangeEvent),
    _strategy(GapEvent),
)
HEAD = st.fixed_dictionaries(
    {k: st.sampled_from(IDS) for k in ("agent", "site", "epoch", "boot")}, optional={"v": st.just(1)}
)
BATCHES = st.builds(lambda head, events: {**head, "events": events}, HEAD, st.lists(EVENTS, min_size=1, max_size=4))


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    _get(doc, path[:-1])[path[-1]] = value


def _tweak(doc: dict[str, Any], rnd: random.Random, number: str) -> bytes:
    """One change aimed at a bound or a type: a tricky value, a number as written, a renamed or unknown key, a key
    given twice."""
    paths = [path for path, _ in json_paths(doc)][1:]
    objects = [p for p in [(), *paths] if isinstance(_get(doc, p), dict) and _get(doc, p)]
    how = rnd.choice(("value", "value", "number", "rename", "unknown", "duplicate"))
    if how == "value":
        _set(doc, rnd.choice(paths), rnd.choice(TRICKY))
    elif how == "number":
        _set(doc, rnd.choice(paths), _MARK)
        return json.dumps(doc).replace(json.dumps(_MARK), number).encode()
    elif how in ("rename", "unknown"):
        obj = _get(doc, rnd.choice(objects))
        key = rnd.choice(list(obj))
        new = ("from_" if key == "from" else key + "_") if how == "rename" else "extra"
        obj[new] = obj.pop(key) if how == "rename" else 1
    else:  # the same key twice: JSON text only (a dict holds a key once)
        obj = _get(doc, rnd.choice(objects))
        key = rnd.choice(list(obj))
        first = json.dumps({key: rnd.choice(TRICKY)})[1:-1]
        return json.dumps(doc).replace(json.dumps(obj), "{" + first + ", " + json.dumps(obj)[1:], 1).encode()
    return json.dumps(doc).encode()


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(doc=BATCHES, rnd=st.randoms(use_true_random=False), number=NUMBER_TEXT)
def test_the_decoder_accepts_exactly_what_the_protocol_allows(
    doc: dict[str, Any], rnd: random.Random, number: str
) -> None:
    text = json.dumps(doc)
    _check(text.encode())
    for kind in rnd.sample([m for m in MUTATIONS if m not in ("none", "big_string")], 2):
        _check(mutate(json.loads(text), kind, rnd))
    for _ in range(3):
        _check(_tweak(json.loads(text), rnd, number))


def _batch(*events: Any) -> bytes:
    """Written as given (through a Struct, a NUL would already be replaced)."""
    head = {"v": 1, "agent": "a1", "site": "plant1", "epoch": "e1", "boot": "b1"}
    return json.dumps({**head, "events": list(events)}, separators=(",", ":"), ensure_ascii=False).encode()


def _metrics(**body: Any) -> dict[str, Any]:
    base = {"target": "t00", "minute": 0, "probes": 12, "failures": 0, "latency_p50_ms": 1.5}
    return {"seq": 1, "ts": 60_000, "type": "metrics", "body": {**base, **body}}


def _change(**body: Any) -> dict[str, Any]:
    base = {"target": "t00", "asset": "a1", "from": "UP", "to": "DOWN", "reason": "no answer", "at": 5}
    return {"seq": 3, "ts": 5, "type": "state_change", "body": {**base, **body}}


@settings(max_examples=200, deadline=None, database=None)
@given(number=NUMBER_TEXT)
def test_a_latency_written_any_way_is_taken_when_finite_and_not_negative(number: str) -> None:
    payload = _batch(_metrics(latency_p50_ms=_MARK)).replace(
        json.dumps(_MARK, ensure_ascii=False).encode(), number.encode()
    )
    assert _check(payload) is (math.isfinite(float(number)) and float(number) >= 0)


@pytest.mark.parametrize(
    "payload",
    [
        _batch(_metrics()).replace(b'"probes":12', b'"probes":"12"'),  # the previous version converted these
        _batch(_metrics()).replace(b'"probes":12', b'"probes":12.0'),
        _batch(_metrics()).replace(b'"probes":12', b'"probes":true'),
        _batch(_metrics()).replace(b'"v":1', b'"v":true'),
        _batch(_change()).replace(b'"from":', b'"from_":'),  # the Python name, which it also took
        _batch(_metrics(target="t00\n")),  # Python's `$` matches before a final newline: not the end here
        _batch(_metrics(latency_p50_ms=-0.5)),
        _batch(_metrics()).replace(b'"latency_p50_ms":1.5', b'"latency_p50_ms":1e999'),  # a float's infinity
        _batch(_metrics(extra=1)),
        _batch(_change(cause="bad..cause")),
        _batch({"seq": 1, "ts": 0, "type": "heartbeat", "body": {"interval_s": 60,
                                                                 "states": {f"t{i}": "UP" for i in range(2001)}}}),
    ],
)  # fmt: skip
def test_what_the_protocol_does_not_allow_is_refused_with_a_reason(payload: bytes) -> None:
    with pytest.raises(WireError, match=r".+"):
        decode(EventBatch, payload)


def test_a_text_is_cut_and_its_nul_replaced_on_decoding_and_on_building() -> None:
    [event] = decode(EventBatch, _batch(_change(reason="a\0b" + "x" * MAX_TEXT))).events
    assert isinstance(event, StateChangeEvent)
    assert event.body.reason.startswith("a\ufffdb") and event.body.reason.endswith(TRUNCATED)
    assert len(event.body.reason) == MAX_TEXT
    built = build(StateChangeBody, {"target": "t00", "from": "UP", "to": "DOWN", "reason": "a\0b", "at": 5})
    assert built.reason == "a\ufffdb" == StateChangeBody(**{**msgspec.structs.asdict(built), "reason": "a\0b"}).reason
    gap = GapBody(from_seq=1, to_seq=1, count=1, reason="r", dropped_types=["x\0"])
    assert gap.dropped_types == ["x\ufffd"]


def test_build_checks_values_from_outside_as_decode_does() -> None:
    with pytest.raises(WireError, match=r"\$\.assets\[0\]"):
        build(MaintenanceWindowWire, {"id": "w", "start": 0, "end": 1, "assets": ["Line 3"], "announced_at": 0,
                                      "announced_by": "me"})  # fmt: skip


@pytest.mark.parametrize(
    ("model", "payload"),
    [
        (HeartbeatBody, b'{"interval_s":60,"states":{"plc-1":"UP","Plc-2":"UP"}}'),
        (MetricsBody, b'{"target":"t00\\n","minute":0,"probes":1,"failures":0}'),
        (MetricsEvent, b'{"seq":1,"ts":0,"type":"metrics","body":{"target":"-x","minute":0,"probes":1,"failures":0}}'),
    ],
)
def test_the_ids_checked_after_msgspec_are_checked_in_every_message_that_holds_them(
    model: type[WireModel], payload: bytes
) -> None:
    with pytest.raises(WireError, match=r"an id .* - at "):
        decode(model, payload)
    with pytest.raises(WireError, match=r"an id .* - at "):
        build(model, json.loads(payload))
