"""Size limits on the way from agent to collector: the agent's batches fit, the collector refuses what does not."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agent.outbox import Outbox
from collector.ingest import OVERSIZE_KEPT_BYTES, Ingest
from collector.store.sqlite import SqliteStore
from linewarden.changes import ChangeDetector
from linewarden.config.agent import OutboxConfig
from linewarden.config.base import BrokerConfig
from linewarden.config.collector import CollectorConfig, LivenessConfig
from linewarden.domain import State
from linewarden.mqtt import MqttClient
from linewarden.wire import MAX_TEXT, TRUNCATED, HeartbeatBody, StateChangeBody, birth_topic, encode, events_topic
from simulators.broker import Mosquitto
from tests.integration.collector_helpers import T0, birth, heartbeats
from tests.integration.test_forwarder import SITE, acker_on, forwarding, make_config, wall_ms
from tests.waiting import async_wait_until

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.broker
async def test_agent_batches_stay_within_batch_max_bytes(mosquitto: Mosquitto, tmp_path: Path) -> None:
    cfg = make_config(mosquitto.port, "bulky", batch_max_events=500, batch_max_bytes=16 * 1024)
    sizes: list[int] = []
    spy = MqttClient(BrokerConfig(host=mosquitto.host, port=mosquitto.port), client_id="size-spy")
    spy.subscribe(events_topic(SITE, "bulky"), lambda _t, p: sizes.append(len(p)))
    await spy.start()
    await async_wait_until(lambda: spy.connected, what="spy connected")
    # ~7 KB per heartbeat: 500 of them in one batch would be 3.5 MB
    body = HeartbeatBody(interval_s=60, states={f"target-{i:03}-{'x' * 50}": State.UP for i in range(100)})
    try:
        async with acker_on(mosquitto) as acker, forwarding(cfg, tmp_path / "o.db") as run:
            run.outbox.append_many([("heartbeat", body, wall_ms()) for _ in range(60)])
            run.forwarder.wake()
            await async_wait_until(lambda: run.outbox.stats().depth == 0, what="outbox drained by acks")
            assert sorted(acker.events[("bulky", run.outbox.epoch)]) == list(range(1, 61))
    finally:
        await spy.stop()
    assert sizes and max(sizes) <= 16 * 1024


def test_an_oversize_payload_is_a_counted_dead_letter_with_its_first_bytes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "c.db")
    store.migrate()
    ingest = Ingest(store, LivenessConfig(), T0, max_payload_bytes=1024 * 1024)
    payload = heartbeats(SITE, "a1", [1]) + b" " * (1024 * 1024)  # valid JSON, but too large
    assert ingest.handle(events_topic(SITE, "a1"), payload, T0) == []
    assert store.dead_letter_total() == 1
    [letter] = store.dead_letters()
    assert letter.reason == f"payload of {len(payload)} bytes is over the limit of {1024 * 1024} bytes"
    assert len(letter.payload) == OVERSIZE_KEPT_BYTES and letter.payload.startswith('{"v":1')
    assert store.table_rows("events") == []
    # a payload within the limit is ingested
    ingest.handle(birth_topic(SITE, "a1"), encode(birth(SITE, "a1")), T0)
    fits = heartbeats(SITE, "a1", [1])
    assert [json.loads(p.payload)["through"] for p in ingest.handle(events_topic(SITE, "a1"), fits, T0)] == [1]
    store.close()


def test_the_collector_config_sets_the_payload_limit(tmp_path: Path) -> None:
    from collector.service import CollectorService

    config = CollectorConfig.model_validate({"ingest": {"max_payload_bytes": 2 * 1024 * 1024}})
    store = SqliteStore(tmp_path / "c.db")
    store.migrate()
    service = CollectorService(config, store)
    assert service.ingest.max_payload_bytes == 2 * 1024 * 1024
    store.close()


def test_the_packaged_broker_refuses_packets_beyond_the_collector_limit_plus_headers() -> None:
    conf = (REPO / "packaging" / "mosquitto" / "linewarden.conf").read_text()
    m = re.search(r"^max_packet_size (\d+)$", conf, re.MULTILINE)
    assert m, "max_packet_size is not set in the packaged broker config"
    default = CollectorConfig().ingest.max_payload_bytes
    assert default < int(m.group(1)) <= default + 64 * 1024


def test_the_agent_cuts_long_reasons_and_versions_before_the_outbox(tmp_path: Path) -> None:
    detector = ChangeDetector()
    detector.observe("plc-1", "line3-plc", {"firmware": "1.0"}, T0)
    [change] = detector.observe("plc-1", "line3-plc", {"firmware": "2.0-" + "9" * 5000}, T0)
    reason = "read failed: " + "r" * 5000
    change_of_state = StateChangeBody(target="plc-1", asset="line3-plc", from_=State.UP, to=State.DOWN,
                                      reason=reason, at=T0)
    outbox = Outbox(tmp_path / "o.db", OutboxConfig())
    outbox.append("change_detected", change, T0)
    outbox.append("state_change", change_of_state, T0)
    new, cut_reason = (json.loads(r.body)[k] for r, k in zip(outbox.pending(0, 10), ("new", "reason"), strict=True))
    outbox.close()
    assert new == ("2.0-" + "9" * 5000)[: MAX_TEXT - len(TRUNCATED)] + TRUNCATED
    assert cut_reason == reason[: MAX_TEXT - len(TRUNCATED)] + TRUNCATED
