"""Poison input on both stores: one bad event is dead-lettered with its reason and never stalls the agent's acks."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from msgspec.structs import replace

from collector.importer import import_lines
from collector.ingest import Ingest
from collector.store.base import Store
from linewarden.config.collector import LivenessConfig
from linewarden.errors import WireError
from linewarden.wire import (
    TRUNCATED,
    Birth,
    Death,
    EventBatch,
    StateChangeBody,
    StateChangeEvent,
    WireModel,
    birth_topic,
    build,
    decode,
    encode,
    events_topic,
)
from tests.integration.collector_helpers import T0, birth, heartbeat, state_change
from tests.integration.store_params import STORES, open_store_param

SITE, AGENT = "p1", "a1"
TOPIC = events_topic(SITE, AGENT)


@pytest.fixture(params=STORES)
def any_store(request, tmp_path):
    yield from open_store_param(request, tmp_path)


@pytest.fixture
def ingest(any_store: Store) -> Ingest:
    i = Ingest(any_store, LivenessConfig(missed_heartbeats=3, clock_skew_threshold=timedelta(days=1)), T0)
    i.handle(f"lw/v1/{SITE}/{AGENT}/birth", encode(birth(SITE, AGENT)), T0)
    return i


def _events_payload(events: list[dict[str, Any]]) -> bytes:
    return json.dumps({"v": 1, "agent": AGENT, "site": SITE, "epoch": "e1", "boot": "b1", "events": events}).encode()


def _event(seq: int, **body: object) -> dict[str, Any]:
    base = {"target": "plc-1", "asset": "line3-plc", "from": "UP", "to": "DOWN", "reason": "no answer", "at": T0}
    return {"seq": seq, "ts": T0 + seq, "type": "state_change", "body": {**base, **body}}


def _acked(published) -> int:
    [ack] = published
    return int(json.loads(ack.payload)["through"])


def test_nul_in_a_text_field_is_stored_replaced_and_acked(ingest, any_store):
    payload = _events_payload([_event(1), _event(2, reason="version 1.2\u0000junk"), _event(3)])
    assert _acked(ingest.handle(TOPIC, payload, T0)) == 3
    reasons = [r["reason"] for r in any_store.table_rows("state_changes") if r["seq"] == 2]
    assert reasons == ["version 1.2\ufffdjunk"]


@pytest.mark.parametrize("field", ["seq", "ts", "at"])
def test_an_integer_beyond_bigint_is_a_counted_dead_letter(ingest, any_store, field):
    bad = _event(2)
    if field == "at":
        bad["body"]["at"] = 2**63
    else:
        bad[field] = 2**63
    assert ingest.handle(TOPIC, _events_payload([_event(1), bad]), T0) == []
    assert any_store.dead_letter_total() == 1
    [letter] = any_store.dead_letters()
    assert field in letter.reason
    # the agent goes on with its next batch
    assert _acked(ingest.handle(TOPIC, _events_payload([_event(1), _event(2)]), T0)) == 2


def test_a_long_reason_is_cut_with_a_marker(ingest, any_store):
    assert _acked(ingest.handle(TOPIC, _events_payload([_event(1, reason="x" * 100_000)]), T0)) == 1
    [row] = any_store.table_rows("state_changes")
    assert len(row["reason"]) == 1000 and row["reason"].endswith(TRUNCATED)


def _unchecked_change(seq: int, at: int) -> StateChangeEvent:
    """A state change the wire would refuse (building checks no bounds): what a store-level data error looks like."""
    good = state_change(seq, T0)
    return StateChangeEvent(seq=seq, ts=good.ts, body=replace(good.body, at=at))


def test_a_batch_the_store_refuses_is_split_and_only_the_bad_event_dead_lettered(any_store):
    events = [heartbeat(1, T0), state_change(2, T0), _unchecked_change(3, 2**70), heartbeat(4, T0), heartbeat(5, T0)]
    for _ in range(2):  # the agent sends the batch again: nothing more is stored, nothing counted twice
        with any_store.transaction() as tx:
            stored = tx.insert_events(SITE, AGENT, "e1", "b1", events, T0)
            through = tx.advance_ack(SITE, AGENT, "e1")
        assert through == 5
    assert [e.seq for e in stored] == []
    assert sorted(r["seq"] for r in any_store.table_rows("events")) == [1, 2, 4, 5]
    assert any_store.dead_letter_total() == 1
    [letter] = any_store.dead_letters()
    assert letter.topic == TOPIC and (letter.site, letter.agent) == (SITE, AGENT)
    assert letter.reason.startswith("seq 3: the store refused the event")
    assert json.loads(letter.payload)["seq"] == 3


def test_a_refused_event_leaves_none_of_its_derived_rows(any_store):
    with any_store.transaction() as tx:
        stored = tx.insert_events(SITE, AGENT, "e1", "b1", [_unchecked_change(1, 2**70), state_change(2, T0)], T0)
    assert [e.seq for e in stored] == [2]
    assert [r["seq"] for r in any_store.table_rows("state_changes")] == [2]


def test_a_time_before_the_epoch_is_refused_by_the_wire_model():
    with pytest.raises(WireError):
        build(StateChangeBody, {"target": "x", "from": "UP", "to": "DOWN", "reason": "r", "at": -1})


def test_junk_with_nul_bytes_is_kept_as_a_dead_letter(ingest, any_store):
    assert ingest.handle(TOPIC, b"\x00\x00{not json\x00", T0) == []
    assert any_store.dead_letter_total() == 1
    [letter] = any_store.dead_letters()
    assert "\x00" not in letter.payload and letter.payload.startswith("\\x00")


def test_nul_in_a_birth_is_stored_replaced_and_acked(ingest, any_store):
    """A birth is no event batch (nothing splits it): a NUL the store cannot hold must not reach the store."""
    doc = json.loads(encode(birth(SITE, AGENT, boot="b2")))
    doc.update(version="1.0\u0000x", outbox_fault="disk\u0000full")
    [ack] = ingest.handle(birth_topic(SITE, AGENT), json.dumps(doc).encode(), T0)
    assert json.loads(ack.payload)["boot"] == "b2"
    [row] = any_store.table_rows("agents")
    assert (row["boot"], row["version"], row["outbox_fault"]) == ("b2", "1.0\ufffdx", "disk\ufffdfull")


def _every_field() -> list[tuple[type[WireModel], dict[str, Any]]]:
    """One message of each kind an agent sends, with every optional text field present."""
    states = {"plc-1": "UP"}
    bodies: dict[str, dict[str, Any]] = {
        "state_change": {"target": "plc-1", "asset": "a", "from": "UP", "to": "DOWN", "reason": "r", "at": T0},
        "heartbeat": {"interval_s": 60, "states": states,
                      "certificates": [{"role": "own", "subject": "CN=x", "not_after": T0}]},
        "metrics": {"target": "plc-1", "minute": T0, "probes": 1, "failures": 0},
        "incident_opened": {"incident": "i1", "target": "plc-1", "severity": "S1", "state": "DOWN", "reason": "r",
                            "opened_at": T0},
        "incident_updated": {"incident": "i1", "severity": "S2", "state": "DOWN", "reason": "r", "at": T0},
        "incident_resolved": {"incident": "i1", "at": T0, "reason": "r"},
        "change_detected": {"target": "plc-1", "asset": "a", "what": "w", "old": "o", "new": "n", "at": T0},
        "version_observed": {"target": "plc-1", "asset": "a", "what": "w", "version": "v", "at": T0},
        "gap": {"from_seq": 1, "to_seq": 1, "count": 1, "reason": "r", "dropped_types": ["metrics"]},
    }
    events = [{"seq": i, "ts": T0, "type": t, "body": b} for i, (t, b) in enumerate(bodies.items(), 2)]
    head = {"agent": AGENT, "site": SITE, "epoch": "e1", "boot": "b1"}
    return [
        (Birth, {**json.loads(encode(birth(SITE, AGENT))), "outbox_fault": "f"}),
        (Death, {**head, "ts": T0, "reason": "r"}),
        (EventBatch, {**head, "events": events}),
    ]


def _strings(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, str):
        return [path]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    return [p for k, v in items for p in _strings(v, (*path, k))]


def _with_nul(doc: Any, path: tuple[Any, ...]) -> Any:
    doc = json.loads(json.dumps(doc))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] += "\u0000"
    return doc


@pytest.mark.parametrize(("model", "doc"), _every_field(), ids=lambda v: getattr(v, "__name__", ""))
def test_no_text_an_agent_sends_reaches_a_store_with_a_nul(model: type[WireModel], doc: dict[str, Any]) -> None:
    """Every string of every agent message, NUL appended: refused (an id), or kept with the NUL replaced."""
    decode(model, json.dumps(doc).encode())  # the unmutated message is valid
    for path in _strings(doc):
        try:
            kept = decode(model, json.dumps(_with_nul(doc, path)).encode())
        except WireError:
            continue
        assert "\\u0000" not in encode(kept).decode(), f"{model.__name__} {'.'.join(map(str, path))} keeps a NUL"


def test_nul_in_an_imported_record_is_stored_replaced(any_store):
    """The collector's own records in a history import are no wire messages, but the same rule holds."""
    lines = [
        {"record": "ticket_raised", "incident": "inc-1", "at": T0, "actor": "a\u0000b",
         "details": {"contract": "c\u0000", "note\u0000": ["x\u0000"]}},
        {"record": "monitoring_gap", "site": SITE, "agent": AGENT, "start": T0, "end": T0 + 5, "reason": "r\u0000"},
    ]
    result = import_lines(any_store, [json.dumps(line).encode() for line in lines], T0)
    assert (result.imported, result.bad) == (2, [])
    [record] = any_store.table_rows("ticket_records")
    assert (record["actor"], record["contract"]) == ("a\ufffdb", "c\ufffd")
    assert json.loads(record["details"])["note\ufffd"] == ["x\ufffd"]
    assert [g["reason"] for g in any_store.table_rows("gaps")] == ["r\ufffd"]
