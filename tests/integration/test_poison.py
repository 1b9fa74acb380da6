"""Poison input on both stores: one bad event is dead-lettered with its reason and never stalls the agent's acks."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from collector.ingest import Ingest
from collector.store.base import Store
from linewarden.config.collector import LivenessConfig
from linewarden.wire import TRUNCATED, StateChangeBody, StateChangeEvent, encode, events_topic
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
    """A state change the wire models would refuse: what a store-level data error looks like."""
    good = state_change(seq, T0)
    return StateChangeEvent.model_construct(seq=seq, ts=good.ts, body=good.body.model_copy(update={"at": at}))


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
    with pytest.raises(ValueError):
        StateChangeBody.model_validate({"target": "x", "from": "UP", "to": "DOWN", "reason": "r", "at": -1})


def test_junk_with_nul_bytes_is_kept_as_a_dead_letter(ingest, any_store):
    assert ingest.handle(TOPIC, b"\x00\x00{not json\x00", T0) == []
    assert any_store.dead_letter_total() == 1
    [letter] = any_store.dead_letters()
    assert "\x00" not in letter.payload and letter.payload.startswith("\\x00")
