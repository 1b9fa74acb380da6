"""Ingest stores the same with the fast decoder (collector/fastwire.py) as with pydantic alone: every table, on a
hostile mix where admission refuses, dead-letters and takes batches one by one."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from collector import fastwire
from collector.fastwire import FastBatch
from collector.ingest import Ingest
from collector.store.sqlite import SqliteStore
from linewarden.config.collector import LivenessConfig
from linewarden.wire import birth_topic, encode, events_topic
from tests.integration.collector_helpers import T0, birth

SITE, AGENT = "plant1", "a1"
MINUTE = 60_000
RECEIVED = T0 + 20 * MINUTE
LIVENESS = LivenessConfig(clock_skew_threshold=timedelta(seconds=30), max_seq_ahead=20)


def _metrics(seq: int, ts: int, target: str = "plc-1", p50: float | None = 1.25) -> dict[str, Any]:
    body = {"target": target, "minute": ts - MINUTE, "probes": 12, "failures": 3, "latency_p50_ms": p50}
    return {"seq": seq, "ts": ts, "type": "metrics", "body": body}


def _heartbeat(seq: int, ts: int, **figures: Any) -> dict[str, Any]:
    return {"seq": seq, "ts": ts, "type": "heartbeat", "body": {"interval_s": 60, "states": {"plc-1": "UP"}, **figures}}


def _change(seq: int, at: int, target: str = "plc-1", reason: str = "no answer") -> dict[str, Any]:
    body = {"target": target, "asset": "elsewhere", "from": "UP", "to": "DOWN", "reason": reason, "at": at}
    return {"seq": seq, "ts": at, "type": "state_change", "body": body}


def _batch(*events: dict[str, Any]) -> tuple[str, bytes, int]:
    doc = {"v": 1, "agent": AGENT, "site": SITE, "epoch": "e1", "boot": "b1", "events": list(events)}
    return events_topic(SITE, AGENT), json.dumps(doc).encode(), RECEIVED


GROUP = [
    _batch(_heartbeat(1, T0 + MINUTE, outbox_depth=3, oldest_unacked_at=T0), _metrics(2, T0 + MINUTE)),
    _batch(_change(3, T0 + 2 * MINUTE), _change(4, T0 + 2 * MINUTE, target="ghost")),  # ghost: not registered
    _batch(_metrics(2, T0 + MINUTE), _metrics(5, T0 + 3 * MINUTE, p50=None)),  # a resend, and a new one
    _batch(_change(6, T0 + 4 * MINUTE, reason="nul \0 here")),  # pydantic's: it replaces the NUL
    _batch(_change(4, T0 + 2 * MINUTE, target="ghost"), _metrics(7, T0 + 5 * MINUTE, p50=2e16)),  # pydantic's
    _batch(_metrics(8, T0 + 6 * MINUTE), _metrics(99, T0 + 7 * MINUTE)),  # 99: implausibly far ahead
    _batch(_heartbeat(9, RECEIVED + 5 * MINUTE), _metrics(10, RECEIVED + 5 * MINUTE, target="Bad")),  # refused
    _batch(_heartbeat(11, RECEIVED + 6 * MINUTE, certificates=[{"role": "ca", "subject": "CN=x", "not_after": 0}])),
]


def _tables(store: SqliteStore) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table in store.table_names():
        rows = [tuple(sorted((k, v) for k, v in r.items() if k != "id")) for r in store.table_rows(table)]
        out[table] = sorted(rows, key=repr)
    return out


def _stored(tmp_path: Path, name: str, together: bool) -> SqliteStore:
    store = SqliteStore(tmp_path / f"{name}.db")
    store.migrate()
    ingest = Ingest(store, LIVENESS, T0)
    ingest.handle(birth_topic(SITE, AGENT), encode(birth(SITE, AGENT)), T0)
    if together:
        ingest.handle_many(GROUP)
    else:
        for message in GROUP:
            ingest.handle(*message)
    return store


@pytest.mark.parametrize("together", [False, True], ids=["alone", "one-group"])
def test_the_fast_decoder_stores_what_pydantic_stores(tmp_path: Path, monkeypatch: Any, together: bool) -> None:
    taken: list[FastBatch] = []
    decode_batch = fastwire.decode_batch

    def counting(payload: bytes) -> FastBatch | None:
        batch = decode_batch(payload)
        if batch is not None:
            taken.append(batch)
        return batch

    monkeypatch.setattr(fastwire, "decode_batch", counting)
    fast = _stored(tmp_path, "fast", together)
    assert len(taken) == 5  # all but the NUL, the float pydantic writes as 2e+16, and the invalid target
    monkeypatch.setattr(fastwire, "decode_batch", lambda payload: None)
    slow = _stored(tmp_path, "pydantic", together)
    assert _tables(fast) == _tables(slow)
    refused = {r["seq"] for r in fast.table_rows("refused_events")}
    assert refused == {4} and fast.dead_letter_total() == 3  # the ghost, the seq 99, the batch with "Bad"
    bodies = {r["seq"]: r["body"] for r in fast.table_rows("events")}
    assert bodies[1] == f'{{"interval_s":60,"states":{{"plc-1":"UP"}},"outbox_depth":3,"oldest_unacked_at":{T0}}}'
    assert [r["target"] for r in fast.table_rows("state_changes")] == ["plc-1", "plc-1"]
