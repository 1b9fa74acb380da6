"""Event batches that arrive before their boot's birth (a broker cluster's routes): held in the store, stored with
the birth, or after the birth wait judged as from an agent with no birth; bounded (docs/ingest.md)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.ingest import BIRTH_WAIT_MS, HELD_PER_AGENT, Ingest
from collector.service import CollectorService
from collector.store.base import Store
from collector.store.sqlite import SqliteStore
from linewarden.config.base import BrokerConfig
from linewarden.config.collector import CollectorConfig, CollectorSection, IngestConfig, LivenessConfig
from linewarden.wire import Ack, birth_topic, decode, encode, events_topic
from tests.integration.collector_helpers import T0, batch, birth, heartbeat, state_change
from tests.integration.store_params import STORES, open_store_param
from tests.integration.test_ingest import FakeAgent
from tests.waiting import async_wait_until

SITE = "plant1"
_names = itertools.count(1)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    yield from open_store_param(request, tmp_path)


@pytest.fixture
def ingest(store: Store) -> Ingest:
    return Ingest(store, LivenessConfig(clock_skew_threshold=timedelta(days=3650)), T0)


def _events(agent: str, events: list[Any], boot: str = "b1") -> bytes:
    return encode(batch(SITE, agent, events, boot=boot))


def _through(out: list[Any]) -> int:
    [pub] = out
    return decode(Ack, pub.payload).through


def _stored(store: Store, agent: str) -> list[int]:
    return sorted(int(r["seq"]) for r in store.table_rows("events") if r["agent"] == agent)


def test_a_batch_before_its_birth_is_held_then_stored_with_its_state_change(ingest: Ingest, store: Store) -> None:
    topic = events_topic(SITE, "a1")
    later, first = _events("a1", [heartbeat(3, T0), state_change(4, T0)]), _events("a1", [state_change(1, T0)])
    assert ingest.handle(topic, later, T0) == []  # PUBACKed once committed, no ack
    assert ingest.handle(topic, first, T0 + 1) == []
    assert ingest.handle(topic, later, T0 + 2) == []  # the same batch again: held once
    assert len(store.table_rows("held_batches")) == 2
    assert store.table_rows("events") == [] and store.dead_letter_total() == 0
    assert store.held_counts() == {(SITE, "a1"): 2}
    ack = decode(Ack, ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1")), T0 + 3)[0].payload)
    assert (ack.through, ack.boot) == (1, "b1")  # seq 2 is still to come
    assert _stored(store, "a1") == [1, 3, 4]
    assert [c.asset for c in store.state_changes(T0 - 1, T0 + 1)] == ["line3-plc", "line3-plc"]
    assert store.table_rows("held_batches") == [] and store.dead_letter_total() == 0
    # sent again after the birth: stored once; then the missing seq moves the ack over all of them
    assert _through(ingest.handle(topic, first, T0 + 4)) == 1
    assert _through(ingest.handle(topic, _events("a1", [heartbeat(2, T0)]), T0 + 5)) == 4
    assert _stored(store, "a1") == [1, 2, 3, 4] and len(store.state_changes(T0 - 1, T0 + 1)) == 2


def test_a_batch_and_its_birth_in_one_group_are_stored_in_order(ingest: Ingest, store: Store) -> None:
    outs = ingest.handle_many([
        (events_topic(SITE, "a1"), _events("a1", [state_change(1, T0)]), T0),
        (birth_topic(SITE, "a1"), encode(birth(SITE, "a1")), T0),
    ])  # fmt: skip
    assert outs[0] == [] and _through(outs[1]) == 1
    assert len(store.state_changes(T0 - 1, T0 + 1)) == 1


def test_a_late_batch_of_an_earlier_boot_is_not_held(ingest: Ingest, store: Store) -> None:
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1")), T0)
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1", boot="b2")), T0 + 1)
    assert _through(ingest.handle(events_topic(SITE, "a1"), _events("a1", [state_change(1, T0)]), T0 + 2)) == 1
    assert len(store.state_changes(T0 - 1, T0 + 1)) == 1 and store.table_rows("held_batches") == []


def test_a_boot_never_born_is_stored_without_its_birth_after_the_wait(ingest: Ingest, store: Store) -> None:
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1")), T0)
    topic = events_topic(SITE, "a1")
    assert ingest.handle(topic, _events("a1", [heartbeat(1, T0), state_change(2, T0)], boot="b2"), T0 + 10) == []
    assert ingest.release_expired(T0 + 10 + BIRTH_WAIT_MS) == []
    assert ingest.next_hold_check == T0 + 10 + BIRTH_WAIT_MS + 1
    [out] = ingest.release_expired(ingest.next_hold_check)
    assert decode(Ack, out.payload).through == 2  # judged against b1's registry, which names plc-1
    assert _stored(store, "a1") == [1, 2] and ingest.next_hold_check is None


def test_held_batches_are_bounded_per_agent_and_in_all(ingest: Ingest, store: Store) -> None:
    for seq in range(1, HELD_PER_AGENT + 1):
        assert ingest.handle(events_topic(SITE, "a1"), _events("a1", [heartbeat(seq, T0)]), T0) == []
    # over the bound: stored as from an agent with no birth (its state change refused), acked as before
    over = _events("a1", [state_change(HELD_PER_AGENT + 1, T0)])
    assert _through(ingest.handle(events_topic(SITE, "a1"), over, T0)) == 0
    assert store.state_changes(T0 - 1, T0 + 1) == [] and store.dead_letter_total() == 1
    ingest.held_in_all = HELD_PER_AGENT + 1
    assert ingest.handle(events_topic(SITE, "a2"), _events("a2", [heartbeat(1, T0)]), T0) == []
    assert _through(ingest.handle(events_topic(SITE, "a3"), _events("a3", [heartbeat(1, T0)]), T0)) == 1
    assert len(store.table_rows("held_batches")) == HELD_PER_AGENT + 1
    # the held ones are still stored with their birth
    assert _through(ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1")), T0)) == HELD_PER_AGENT + 1


# ---------------------------------------------------------------- over the broker, the running collector


async def _collector(mosquitto: Any, tmp_path: Path, **ingest: Any) -> CollectorService:
    config = CollectorConfig(
        collector=CollectorSection(id=f"c{next(_names)}", data_dir=tmp_path / "data"),
        broker=BrokerConfig(host=mosquitto.host, port=mosquitto.port),
        ingest=IngestConfig(**ingest),
    )
    svc = CollectorService(config, SqliteStore(tmp_path / "data" / "collector.db"))
    svc.store.migrate()
    await svc.start()
    await async_wait_until(lambda: svc.mqtt.connected, what="collector connected")
    return svc


def _held_metrics(svc: CollectorService) -> dict[str, float]:
    figures = {}
    for family in text_string_to_metric_families(svc.metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == "linewarden_collector_held_batches_total":
                figures[sample.labels["outcome"]] = sample.value
            elif sample.name == "linewarden_collector_held_batches_stored":
                figures["stored"] = sample.value
    return figures


@pytest.mark.broker
async def test_over_the_broker_the_birth_releases_the_held_batch_and_the_ack_moves(mosquitto, tmp_path) -> None:
    agent = FakeAgent(mosquitto, f"unborn-{next(_names)}")
    await agent.start()
    svc = await _collector(mosquitto, tmp_path)
    try:
        await agent.send(events_topic(SITE, agent.agent), _events(agent.agent, [state_change(1, T0)]))
        await async_wait_until(lambda: _held_metrics(svc).get("stored") == 1, what="the batch held")
        assert agent.acks == []
        await agent.send(birth_topic(SITE, agent.agent), encode(birth(SITE, agent.agent)))
        await agent.acked(1)
        assert len(svc.store.state_changes(T0 - 1, T0 + 1)) == 1
        assert _held_metrics(svc) == {"held": 1, "released": 1, "stored": 0}
    finally:
        await svc.stop()
        svc.store.close()
        await agent.client.stop()


@pytest.mark.broker
async def test_over_the_broker_a_never_born_agent_changes_no_state_after_the_wait(mosquitto, tmp_path) -> None:
    agent = FakeAgent(mosquitto, f"unborn-{next(_names)}")
    await agent.start()
    svc = await _collector(mosquitto, tmp_path, birth_wait=timedelta(seconds=1))
    try:
        await agent.send(events_topic(SITE, agent.agent), _events(agent.agent, [state_change(1, T0)]))
        await agent.acked(1)  # after the birth wait, refused as from an agent with no birth: its seq is passed
        assert svc.store.state_changes(T0 - 1, T0 + 1) == []
        assert [d.reason for d in svc.store.dead_letters()] == [
            f"event seq 1 (state_change): target plc-1 is not in the registry of {SITE}/{agent.agent}"
            " (no birth or imported target list names it)"
        ]
        assert _held_metrics(svc) == {"held": 1, "expired": 1, "stored": 0}
    finally:
        await svc.stop()
        svc.store.close()
        await agent.client.stop()
