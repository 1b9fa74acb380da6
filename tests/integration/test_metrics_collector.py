"""The collector's /metrics, /healthz and /readyz, scraped from a running collector over a real broker."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.metrics import CollectorMetrics, dead_letter_reason
from collector.service import CollectorService
from collector.store.sqlite import SqliteStore
from collector.ticketing.base import Ticket, TicketSink, VendorRef
from linewarden.config.base import BrokerConfig
from linewarden.errors import TicketError, TicketRejected
from linewarden.mqtt import MqttClient
from linewarden.wire import birth_topic, encode, events_topic
from tests.integration.collector_helpers import birth, heartbeats
from tests.integration.ticketing_helpers import collector_config
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker
SITE, AGENT = "plant1", "line1"


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _service(tmp_path: Path, host: str, port: int, name: str) -> CollectorService:
    store = SqliteStore(tmp_path / f"{name}.db")
    store.migrate()
    svc = CollectorService(collector_config(host, port, tmp_path, name), store, serve_api=True)
    await svc.start()
    return svc


async def test_metrics_move_with_real_ingest_and_readyz_says_ready(mosquitto, tmp_path: Path) -> None:
    svc = await _service(tmp_path, mosquitto.host, mosquitto.port, "c-metrics")
    agent = MqttClient(BrokerConfig(host=mosquitto.host, port=mosquitto.port), client_id="test-metrics-agent")
    try:
        await async_wait_until(lambda: svc.mqtt.connected, what="collector connected")
        await agent.start()
        await async_wait_until(lambda: agent.connected, what="agent connected")
        base = f"http://127.0.0.1:{svc.api_port}"
        async with httpx.AsyncClient(base_url=base) as http:
            before = scrape((await http.get("/metrics")).text)
            assert before[("linewarden_collector_events_stored_total", ())] == 0
            assert before[("linewarden_collector_broker_connected", ())] == 1

            await agent.publish(birth_topic(SITE, AGENT), encode(birth(SITE, AGENT)))
            await agent.publish(events_topic(SITE, AGENT), heartbeats(SITE, AGENT, [1, 2, 3, 4, 5]))
            await agent.publish(events_topic(SITE, AGENT), b"{not json")

            async def stored() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
                return scrape((await http.get("/metrics")).text)

            async def settled() -> bool:
                figures = await stored()
                return figures.get(("linewarden_collector_dead_letters_total", (("reason", "payload"),))) == 1

            await async_wait_until(settled, what="batch stored and garbage dead-lettered")
            after = await stored()
            who = (("agent", AGENT), ("site", SITE))
            assert after[("linewarden_collector_events_stored_total", ())] == 5
            assert after[("linewarden_collector_messages_total", (("kind", "events"),))] == 2
            assert after[("linewarden_collector_messages_total", (("kind", "birth"),))] == 1
            assert after[("linewarden_collector_store_seconds_count", ())] == 3
            assert after[("linewarden_collector_dead_letters_stored", ())] == 1
            assert after[("linewarden_agent_ack_lag_events", who)] == 0  # acked through 5
            assert after[("linewarden_agent_last_seen_timestamp_seconds", who)] > 1_000_000_000
            assert after[("linewarden_collector_dispatches", (("state", "pending"),))] == 0
            assert after[("linewarden_collector_timer_lag_seconds", ())] == 0

            health = await http.get("/healthz")
            ready = await http.get("/readyz")
            assert health.status_code == 200
            assert ready.status_code == 200
            assert ready.json()["checks"] == {"store": True, "broker": True}
    finally:
        await agent.stop()
        await svc.stop()
        svc.store.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_readyz_is_503_while_the_broker_is_unreachable(tmp_path: Path) -> None:
    svc = await _service(tmp_path, "127.0.0.1", _closed_port(), "c-unready")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.api_port}") as http:
            ready = await http.get("/readyz")
            assert (await http.get("/healthz")).status_code == 200
            figures = scrape((await http.get("/metrics")).text)
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"store": True, "broker": False}
        assert figures[("linewarden_collector_broker_connected", ())] == 0
    finally:
        await svc.stop()
        svc.store.close()


class _Vendor(TicketSink):
    kind = "webhook"

    def __init__(self) -> None:
        self.failures: list[Exception] = [TicketError("503 from the vendor"), TicketRejected("400: bad field")]

    async def create(self, ticket: Ticket) -> VendorRef:
        if self.failures:
            raise self.failures.pop(0)
        return VendorRef("T-1", "T-1")

    async def update(self, ref: VendorRef, ticket: Ticket) -> None: ...

    async def comment(self, ref: VendorRef, ticket: Ticket, text: str) -> None: ...

    async def resolve(self, ref: VendorRef, ticket: Ticket, note: str) -> None: ...

    async def aclose(self) -> None: ...


async def test_sink_calls_are_timed_and_failures_counted_by_kind(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "c.db")
    store.migrate()
    metrics = CollectorMetrics(store, lambda: 0, lambda: True)
    sink = metrics.metered(_Vendor())
    ticket = Ticket.__new__(Ticket)  # the fake vendor never reads it
    for expected in (TicketError, TicketRejected):
        with pytest.raises(expected):
            await sink.create(ticket)
    assert (await sink.create(ticket)).id == "T-1"
    figures = scrape(metrics.exposition().decode())
    calls = (("action", "create"), ("sink", "webhook"))
    assert figures[("linewarden_collector_sink_request_seconds_count", calls)] == 3
    assert figures[("linewarden_collector_sink_errors_total", (("action", "create"), ("kind", "error"),
                                                                ("sink", "webhook")))] == 1  # fmt: skip
    assert figures[("linewarden_collector_sink_errors_total", (("action", "create"), ("kind", "rejected"),
                                                                ("sink", "webhook")))] == 1  # fmt: skip
    store.close()


def test_dead_letter_reasons_are_a_bounded_set() -> None:
    assert dead_letter_reason("not a linewarden agent topic: 'x'") == "topic"
    assert dead_letter_reason("payload names a/b, topic names c/d") == "sender"
    assert dead_letter_reason("birth acked_through 99: more than 10 beyond the epoch's ack (0), ignored") == "ack_floor"
    assert dead_letter_reason("event seq 7 (heartbeat): more than 10 beyond the epoch's ack (0): implausible") == (
        "implausible_seq"
    )
    assert dead_letter_reason("invalid JSON at line 1") == "payload"
