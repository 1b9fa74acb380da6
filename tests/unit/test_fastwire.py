"""The fast decoder (collector/fastwire.py) against pydantic, the definition: it accepts only what pydantic accepts,
and then gives the same values, the same body JSON and the same dead-letter JSON."""

from __future__ import annotations

import json
import random
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from bench.fuzz_wire import MUTATIONS, from_schema, json_paths, mutate
from collector import fastwire
from collector.fastwire import (
    FastBatch,
    FastCertExpiry,
    FastHeartbeatBody,
    FastHeartbeatEvent,
    FastMetricsBody,
    FastMetricsEvent,
    FastStateChangeBody,
    FastStateChangeEvent,
)
from linewarden.domain import State
from linewarden.wire import (
    BIGINT_MAX,
    MAX_MS,
    MAX_TEXT,
    CertExpiry,
    EventBatch,
    GapEvent,
    HeartbeatBody,
    HeartbeatEvent,
    MetricsBody,
    MetricsEvent,
    StateChangeBody,
    StateChangeEvent,
    WireModel,
)

MIRRORS: dict[type[BaseModel], type[msgspec.Struct]] = {
    EventBatch: FastBatch,
    StateChangeEvent: FastStateChangeEvent,
    HeartbeatEvent: FastHeartbeatEvent,
    MetricsEvent: FastMetricsEvent,
    StateChangeBody: FastStateChangeBody,
    HeartbeatBody: FastHeartbeatBody,
    MetricsBody: FastMetricsBody,
    CertExpiry: FastCertExpiry,
}
IDS = ("plc-1", "t00", "a", "x_y-9", "0")
# Values that sit on a bound, or just past one, or that pydantic coerces: spliced into generated documents.
TRICKY: tuple[Any, ...] = (
    0, -1, 1, MAX_MS, MAX_MS + 1, BIGINT_MAX, BIGINT_MAX + 1, 86_400, 86_401, 1.0, 12.5, -0.0, 1e16,
    9999999999999998.0, 1e15 + 0.5, 2**53 + 1, 5e-324, "12", "1.5", True, False, None, "", "UP", "up", "DOWN",
    "a" * 64, "a" * 65, "plc-1\n", "Plc-1", "-x", "\0", "x\0y", "é" * MAX_TEXT, "é" * (MAX_TEXT + 1),
    "\U0001f600" * MAX_TEXT, "\u2028\x7f\x1f\"\\/", "modbus.exception.4", "bad..cause", [], {},
)  # fmt: skip
# Number texts for a float field: spliced in as they are (json.dumps would normalise them).
NUMBER_TEXT = st.from_regex(r"\A-?(0|[1-9][0-9]{0,18})(\.[0-9]{1,25})?([eE][-+]?[0-9]{1,3})?\Z")
_MARK = "\u2063number-here\u2063"


def _event_strategy(model: type[WireModel]) -> st.SearchStrategy[Any]:
    schema = model.model_json_schema(by_alias=True)
    return from_schema(schema, schema.get("$defs", {}))


def _states() -> st.SearchStrategy[dict[str, Any]]:
    # The schema's states (patternProperties) are beyond the fuzz bench's strategies: keys mostly valid ids.
    keys = st.one_of(st.sampled_from(IDS), st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,8}\Z"), st.text(max_size=4))
    values = st.one_of(st.sampled_from([s.value for s in State]), st.sampled_from(["up", 1, None]))
    return st.dictionaries(keys, values, max_size=4)


def _with_states(event: dict[str, Any], states: dict[str, Any]) -> dict[str, Any]:
    if event.get("type") == "heartbeat" and isinstance(event.get("body"), dict):
        event["body"]["states"] = states
    return event


EVENTS = st.one_of(
    _event_strategy(MetricsEvent),
    _event_strategy(MetricsEvent),
    st.builds(_with_states, _event_strategy(HeartbeatEvent), _states()),
    _event_strategy(StateChangeEvent),
    _event_strategy(GapEvent),  # a type the fast decoder leaves to pydantic
)
# Valid heads: the mutations and tweaks below make them invalid.
HEAD = st.fixed_dictionaries(
    {k: st.sampled_from(IDS) for k in ("agent", "site", "epoch", "boot")}, optional={"v": st.just(1)}
)
BATCHES = st.builds(lambda head, events: {**head, "events": events}, HEAD, st.lists(EVENTS, min_size=1, max_size=4))


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _tweak(doc: dict[str, Any], rnd: random.Random, number: str) -> bytes:
    """One of the changes pydantic and msgspec could take differently."""
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


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _same(fast: Any, slow: Any, where: str = "$") -> None:
    """Equal values of equal types all the way down (so 5 and 5.0, 0.0 and -0.0, State.UP and "UP" differ)."""
    if isinstance(slow, BaseModel):
        assert type(fast) is MIRRORS[type(slow)], where
        for name in type(slow).model_fields:
            _same(getattr(fast, name), getattr(slow, name), f"{where}.{name}")
    elif isinstance(slow, dict):
        assert type(fast) is dict and list(fast) == list(slow), where
        for k in slow:
            _same(fast[k], slow[k], f"{where}[{k!r}]")
    elif isinstance(slow, list):
        assert type(fast) is list and len(fast) == len(slow), where
        for i, (f, s) in enumerate(zip(fast, slow, strict=True)):
            _same(f, s, f"{where}[{i}]")
    else:
        assert type(fast) is type(slow) and repr(fast) == repr(slow), f"{where}: {fast!r} != {slow!r}"


def _pydantic(payload: bytes) -> EventBatch | None:
    try:
        return EventBatch.model_validate_json(payload)
    except ValidationError:
        return None


def _check(payload: bytes) -> bool:
    """The property; whether the fast decoder took the payload."""
    fast = fastwire.decode_batch(payload)
    if fast is None:
        return False
    slow = _pydantic(payload)
    assert slow is not None, f"fast decoder accepted what pydantic refuses: {payload[:300]!r}"
    _same(fast, slow)
    assert fastwire.body_texts(fast.events) == fastwire.body_texts(slow.events)
    assert [fastwire.event_json(e) for e in fast.events] == [fastwire.event_json(e) for e in slow.events]
    return True


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(doc=BATCHES, rnd=st.randoms(use_true_random=False), number=NUMBER_TEXT)
def test_what_the_fast_decoder_accepts_pydantic_accepts_and_decodes_alike(
    doc: dict[str, Any], rnd: random.Random, number: str
) -> None:
    text = json.dumps(doc)
    _check(text.encode())
    for kind in rnd.sample([m for m in MUTATIONS if m not in ("none", "big_string")], 2):
        _check(mutate(json.loads(text), kind, rnd))
    for _ in range(3):
        _check(_tweak(json.loads(text), rnd, number))


def _latency(value: Any) -> bytes:
    body = {"target": "t00", "minute": 0, "probes": 1, "failures": 0, "latency_p50_ms": _MARK}
    event = {"seq": 1, "ts": 0, "type": "metrics", "body": body}
    doc = json.dumps({"agent": "a", "site": "s", "epoch": "e", "boot": "b", "events": [event]})
    return doc.replace(json.dumps(_MARK), value if isinstance(value, str) else json.dumps(value)).encode()


@settings(max_examples=300, deadline=None, database=None)
@given(value=st.floats(min_value=0, max_value=1e16, allow_nan=False) | st.integers(min_value=0, max_value=2**60))
def test_a_latency_decodes_and_serialises_alike(value: float) -> None:
    assert _check(_latency(value)) is (float(value) < 1e16)


@settings(max_examples=200, deadline=None, database=None)
@given(number=NUMBER_TEXT)
def test_a_latency_written_any_way_decodes_alike(number: str) -> None:
    _check(_latency(number))


def _batch(*events: Any) -> bytes:
    """Written as given (through the model, a NUL would already be replaced)."""
    head = {"v": 1, "agent": "a1", "site": "plant1", "epoch": "e1", "boot": "b1"}
    return json.dumps({**head, "events": list(events)}, separators=(",", ":"), ensure_ascii=False).encode()


def _metrics(**body: Any) -> dict[str, Any]:
    base = {"target": "t00", "minute": 0, "probes": 12, "failures": 0, "latency_p50_ms": 1.5}
    return {"seq": 1, "ts": 60_000, "type": "metrics", "body": {**base, **body}}


def _heartbeat(**body: Any) -> dict[str, Any]:
    return {"seq": 2, "ts": 0, "type": "heartbeat", "body": {"interval_s": 60, "states": {"t00": "UP"}, **body}}


def _change(**body: Any) -> dict[str, Any]:
    base = {"target": "t00", "asset": "a1", "from": "UP", "to": "DOWN", "reason": "no answer", "at": 5}
    return {"seq": 3, "ts": 5, "type": "state_change", "body": {**base, **body}}


@pytest.mark.parametrize(
    "payload",
    [
        _batch(_metrics(), _heartbeat(), _change()),
        _batch(_metrics(minute=MAX_MS, probes=BIGINT_MAX, latency_max_ms=0.0)),
        _batch(_heartbeat(outbox_depth=0, oldest_unacked_at=MAX_MS,
                          certificates=[{"role": "ca", "subject": "CN=é" * 64, "not_after": 0}])),
        _batch(_heartbeat(states={"a" * 64: "DEGRADED", "b": "UNKNOWN"}, certificates=[])),
        _batch(_change(asset=None, cause="modbus.exception.4", reason="é" * MAX_TEXT)),
        _batch(_change(reason="\U0001f600" * MAX_TEXT, **{"from": "DOWN", "to": "UP"})),
    ],
)  # fmt: skip
def test_what_agents_send_takes_the_fast_decoder(payload: bytes) -> None:
    assert _check(payload)


@pytest.mark.parametrize(
    "payload",
    [
        _batch(_change(reason="a\0b")),  # pydantic replaces the NUL
        _batch(_change(reason="x" * (MAX_TEXT + 1))),  # pydantic cuts it
        _batch(_heartbeat(certificates=[{"role": "own", "subject": "CN\0", "not_after": 0}])),
        _batch(_metrics(latency_p95_ms=1e16)),  # pydantic writes 1e+16
        _batch({"seq": 4, "ts": 0, "type": "gap", "body": {"from_seq": 1, "to_seq": 2, "count": 2, "reason": "x"}}),
        _batch(_metrics()).replace(b'"probes":12', b'"probes":"12"'),
        _batch(_metrics()).replace(b'"probes":12', b'"probes":12.0'),
        _batch(_metrics()).replace(b'"v":1', b'"v":true'),
        _batch(_change()).replace(b'"from":', b'"from_":'),
    ],
)  # fmt: skip
def test_what_pydantic_would_change_or_coerce_is_left_to_it(payload: bytes) -> None:
    assert _pydantic(payload) is not None
    assert fastwire.decode_batch(payload) is None


def test_an_id_ending_in_a_newline_is_refused_as_pydantic_refuses_it() -> None:
    payload = _batch(_metrics(target="t00\n"))  # Python's re lets `$` match before a final newline
    assert _pydantic(payload) is None and fastwire.decode_batch(payload) is None


def test_each_mirror_has_its_models_fields_in_order_with_the_same_defaults() -> None:
    for model, mirror in MIRRORS.items():
        wire = [(f.alias or name, f.default) for name, f in model.model_fields.items() if name != "type"]
        fields = [(f.encode_name, f.default) for f in msgspec.structs.fields(mirror)]
        assert fields == [(name, msgspec.NODEFAULT if d is PydanticUndefined else d) for name, d in wire], model
        if "type" in model.model_fields:
            assert mirror.__struct_config__.tag == model.model_fields["type"].default
