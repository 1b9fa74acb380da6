"""Ingest: over a real Mosquitto with the running collector, and message by message against real SQLite."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from pathlib import Path

import pytest

from collector.ingest import Ingest
from collector.liveness import REASON_MISSED, REASON_RESTARTED, REASON_STOPPED
from collector.service import CollectorService
from collector.store.base import Store
from collector.store.sqlite import SqliteStore
from linewarden.config.base import BrokerConfig
from linewarden.config.collector import CollectorConfig, CollectorSection, LivenessConfig
from linewarden.mqtt import MqttClient
from linewarden.wire import (
    COLLECTOR_STATE_TOPIC,
    Ack,
    CollectorState,
    ack_topic,
    birth_topic,
    death_topic,
    decode,
    encode,
    events_topic,
)
from tests.integration.collector_helpers import T0, batch, birth, death, heartbeat, heartbeats, state_change
from tests.waiting import async_wait_until

SITE = "plant1"
_names = itertools.count(1)


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(tmp_path / "collector.db")
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def ingest(store: SqliteStore) -> Ingest:
    return Ingest(store, LivenessConfig(missed_heartbeats=3, clock_skew_threshold=timedelta(seconds=30)), T0)


def _event_count(store: Store, agent: str) -> int:
    return sum(1 for r in store.table_rows("events") if r["agent"] == agent)


# ---------------------------------------------------------------- over the broker


def _config(mosquitto, data_dir: Path) -> CollectorConfig:
    return CollectorConfig(
        collector=CollectorSection(id=f"c{next(_names)}", data_dir=data_dir),
        broker=BrokerConfig(host=mosquitto.host, port=mosquitto.port),
    )


class FakeAgent:
    """The agent's side of the wire: publishes births and batches, records acks as they arrive."""

    def __init__(self, mosquitto, agent: str) -> None:
        self.agent = agent
        self.client = MqttClient(BrokerConfig(host=mosquitto.host, port=mosquitto.port), client_id=f"test-{agent}")
        self.acks: list[Ack] = []
        self.states: list[CollectorState] = []

    async def start(self) -> None:
        self.client.subscribe(ack_topic(SITE, self.agent), lambda _t, p: self.acks.append(decode(Ack, p)))
        self.client.subscribe(COLLECTOR_STATE_TOPIC, lambda _t, p: self.states.append(decode(CollectorState, p)))
        await self.client.start()
        await async_wait_until(lambda: self.client.connected, what="agent connected")

    async def send(self, topic: str, payload: bytes) -> None:
        await self.client.publish(topic, payload)

    async def acked(self, through: int, epoch: str = "e1") -> None:
        await async_wait_until(
            lambda: self.acks and (self.acks[-1].epoch, self.acks[-1].through) == (epoch, through),
            what=f"ack through {through} (got {self.acks[-1:]})",
        )


@pytest.fixture
async def agent(mosquitto):
    a = FakeAgent(mosquitto, f"agent-{next(_names)}")
    await a.start()
    yield a
    await a.client.stop()


async def _collector(mosquitto, tmp_path: Path) -> CollectorService:
    config = _config(mosquitto, tmp_path / "data")
    svc = CollectorService(config, SqliteStore(tmp_path / "data" / "collector.db"))
    svc.store.migrate()
    await svc.start()
    await async_wait_until(lambda: svc.mqtt.connected, what="collector connected")
    return svc


@pytest.mark.broker
async def test_ack_covers_only_the_contiguous_seqs(mosquitto, tmp_path, agent):
    svc = await _collector(mosquitto, tmp_path)
    try:
        await agent.send(birth_topic(SITE, agent.agent), encode(birth(SITE, agent.agent)))
        await agent.acked(0)
        await agent.send(events_topic(SITE, agent.agent), heartbeats(SITE, agent.agent, [1, 2, 4]))
        await agent.acked(2)
        assert _event_count(svc.store, agent.agent) == 3
        await agent.send(events_topic(SITE, agent.agent), heartbeats(SITE, agent.agent, [3]))
        await agent.acked(4)
    finally:
        await svc.stop()
        svc.store.close()


@pytest.mark.broker
async def test_bad_payloads_are_dead_letters_and_ingest_goes_on(mosquitto, tmp_path, agent):
    svc = await _collector(mosquitto, tmp_path)
    try:
        await agent.send(birth_topic(SITE, agent.agent), encode(birth(SITE, agent.agent)))
        await agent.acked(0)
        topic = events_topic(SITE, agent.agent)
        await agent.send(topic, b"{not json")
        await agent.send(topic, json.dumps({"agent": agent.agent, "site": SITE, "events": []}).encode())
        await agent.send(topic, heartbeats(SITE, agent.agent, [1]))
        await agent.acked(1)
        assert svc.store.dead_letter_total() == 2
        reasons = [d.reason for d in svc.store.dead_letters()]
        assert any("JSON" in r for r in reasons) and any("$.events" in r for r in reasons), reasons
    finally:
        await svc.stop()
        svc.store.close()


@pytest.mark.broker
async def test_restarted_collector_keeps_its_ack_state_and_state_topic(mosquitto, tmp_path, agent):
    svc = await _collector(mosquitto, tmp_path)
    await async_wait_until(lambda: agent.states and agent.states[-1].online, what="collector online")
    await agent.send(birth_topic(SITE, agent.agent), encode(birth(SITE, agent.agent)))
    await agent.acked(0)
    await agent.send(events_topic(SITE, agent.agent), heartbeats(SITE, agent.agent, [1, 2, 3, 5]))
    await agent.acked(3)
    await svc.stop()
    svc.store.close()
    await async_wait_until(lambda: not agent.states[-1].online, what="collector offline")

    svc = await _collector(mosquitto, tmp_path)
    try:
        await async_wait_until(lambda: agent.states[-1].online, what="collector online again")
        await agent.send(events_topic(SITE, agent.agent), heartbeats(SITE, agent.agent, [4]))
        await agent.acked(5)
    finally:
        await svc.stop()
        svc.store.close()


# ---------------------------------------------------------------- message by message


def _ack_of(out) -> Ack:
    assert len(out) == 1 and out[0].retain
    return decode(Ack, out[0].payload)


def test_duplicate_batch_is_harmless(ingest, store):
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1")), T0)
    payload = encode(batch(SITE, "a1", [state_change(1, T0), heartbeat(2, T0 + 60_000)]))
    first = _ack_of(ingest.handle(events_topic(SITE, "a1"), payload, T0 + 61_000))
    again = _ack_of(ingest.handle(events_topic(SITE, "a1"), payload, T0 + 62_000))
    assert first == again == Ack(epoch="e1", through=2)
    assert _event_count(store, "a1") == 2
    assert len(store.state_changes(T0 - 1, T0 + 1)) == 1


def test_two_epochs_of_one_agent_are_kept_apart(ingest, store):
    topic = events_topic(SITE, "a1")
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1")), T0)
    ingest.handle(topic, heartbeats(SITE, "a1", [1, 2, 3]), T0)
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1", epoch="e2")), T0)  # a restored outbox
    ack = _ack_of(ingest.handle(topic, heartbeats(SITE, "a1", [1], epoch="e2"), T0))
    assert ack == Ack(epoch="e2", through=1)
    assert store.acked_through(SITE, "a1", "e1") == 3
    assert _event_count(store, "a1") == 4


def test_payload_naming_another_agent_is_a_dead_letter(ingest, store):
    assert ingest.handle(events_topic(SITE, "a1"), heartbeats(SITE, "a2", [1]), T0) == []
    assert store.dead_letter_counts() == {(SITE, "a1"): 1}
    assert _event_count(store, "a2") == 0


def test_lost_range_reported_by_the_agent_does_not_block_the_ack(ingest):
    gap_event = {"seq": 5, "ts": T0, "type": "gap", "body": {"from_seq": 2, "to_seq": 4, "count": 3, "reason": "full"}}
    first = {"seq": 1, "ts": T0, "type": "heartbeat", "body": {"interval_s": 60, "states": {}}}
    payload = json.dumps({"agent": "a1", "site": SITE, "epoch": "e1", "boot": "b1", "events": [first, gap_event]})
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1")), T0)
    assert _ack_of(ingest.handle(events_topic(SITE, "a1"), payload.encode(), T0)).through == 5


def test_birth_acks_what_the_agent_already_deleted(ingest):
    out = ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1", acked_through=40)), T0)
    assert _ack_of(out) == Ack(epoch="e1", through=40, boot="b1"), "the answer to a birth names its boot"


def test_death_opens_a_gap_from_the_last_heartbeat_closed_by_the_next_boot(ingest, store):
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1")), T0)
    ingest.handle(events_topic(SITE, "a1"), encode(batch(SITE, "a1", [heartbeat(1, T0 + 60_000)])), T0 + 60_000)
    ingest.handle(death_topic(SITE, "a1"), encode(death(SITE, "a1", ts=T0 + 90_000)), T0 + 90_000)
    [gap] = store.open_gaps()
    assert (gap.start_at, gap.end_at) == (T0 + 60_000, None)
    assert gap.reason.startswith(REASON_STOPPED)

    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1", boot="b2", ts=T0 + 600_000)), T0 + 600_000)
    [gap] = store.gaps(T0, T0 + 10**9)
    assert (gap.start_at, gap.end_at) == (T0 + 60_000, T0 + 600_000)


def test_death_of_an_earlier_boot_changes_nothing(ingest, store):
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1", boot="b2")), T0)
    ingest.handle(death_topic(SITE, "a1"), encode(death(SITE, "a1", boot="b1")), T0 + 1000)
    assert store.open_gaps() == []


def test_missed_heartbeats_open_a_gap_that_a_late_event_closes(ingest, store):
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1", heartbeat_interval_s=1)), T0)
    ingest.handle(events_topic(SITE, "a1"), encode(batch(SITE, "a1", [heartbeat(1, T0 + 1000)])), T0 + 1000)
    assert ingest.check_liveness(T0 + 3_900) == []  # 2.9 s of silence: within 3 × 1 s
    [opened] = ingest.check_liveness(T0 + 4_100)
    assert (opened.start_at, opened.reason) == (T0 + 1000, REASON_MISSED)
    assert ingest.check_liveness(T0 + 5_000) == []  # one gap, not one per check

    late = encode(batch(SITE, "a1", [state_change(2, T0 + 60_000)]))  # its event time: T0 + 65 s
    ingest.handle(events_topic(SITE, "a1"), late, T0 + 70_000)
    [gap] = store.gaps(T0, T0 + 10**9)
    assert (gap.start_at, gap.end_at) == (T0 + 1000, T0 + 65_000)


def test_replay_showing_the_agent_kept_watching_withdraws_the_gap(ingest, store):
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1", heartbeat_interval_s=1)), T0)
    ingest.handle(events_topic(SITE, "a1"), heartbeats(SITE, "a1", [1]), T0 + 1000)
    assert ingest.check_liveness(T0 + 10_000)
    ingest.handle(events_topic(SITE, "a1"), heartbeats(SITE, "a1", [2, 3, 4, 5]), T0 + 20_000)
    assert store.gaps(T0, T0 + 10**9) == []


def test_silence_before_the_collector_started_is_not_a_gap(store):
    ingest = Ingest(store, LivenessConfig(missed_heartbeats=3), watching_since=T0 + 3_600_000)
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1", heartbeat_interval_s=1)), T0)
    assert ingest.check_liveness(T0 + 3_600_000 + 2_000) == []
    assert ingest.check_liveness(T0 + 3_600_000 + 3_500) != []


def test_crash_and_restart_without_death_is_a_gap(ingest, store):
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1")), T0)
    ingest.handle(events_topic(SITE, "a1"), heartbeats(SITE, "a1", [1]), T0 + 1000)
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1", boot="b2", ts=T0 + 30_000)), T0 + 30_000)
    [gap] = store.gaps(T0, T0 + 10**9)
    assert (gap.start_at, gap.end_at, gap.reason) == (T0 + 1000, T0 + 30_000, REASON_RESTARTED)


def test_clock_skew_beyond_threshold_is_flagged(ingest, store):
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1", ts=T0 + 45_000)), T0)
    [a] = store.agents()
    assert (a.skew_ms, a.skew_flagged) == (45_000, True)
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1", ts=T0 + 1_000)), T0)
    [a] = store.agents()
    assert (a.skew_ms, a.skew_flagged) == (1_000, False)
    # a replayed (old) batch says nothing about the clock; one from the future does
    ingest.handle(events_topic(SITE, "a1"), encode(batch(SITE, "a1", [heartbeat(1, T0 - 3_600_000)])), T0)
    assert not store.agents()[0].skew_flagged
    ingest.handle(events_topic(SITE, "a1"), encode(batch(SITE, "a1", [heartbeat(2, T0 + 120_000)])), T0)
    assert store.agents()[0].skew_flagged


def test_events_are_scored_by_measured_time(ingest, store):
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1")), T0)
    ingest.handle(events_topic(SITE, "a1"), encode(batch(SITE, "a1", [state_change(1, T0)])), T0 + 3_600_000)
    [change] = store.state_changes(T0, T0 + 1)
    assert change.at == T0
