"""The MQTT client over a list of broker nodes, against real Mosquitto processes and a node that never answers:
each failure (refused, silent, lost) moves it to the next node, a round of failures waits, subscriptions follow."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from linewarden.config.base import BrokerConfig
from linewarden.config.load import convert
from linewarden.mqtt import MqttClient
from simulators.broker import Mosquitto, free_port
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker

WAIT_S = 20.0


@pytest.fixture
async def silent_node() -> AsyncIterator[int]:
    """A port that accepts TCP connections and never sends a byte (a hung broker: no CONNACK)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    for writer in held:
        writer.close()


def _nodes(*ports: int, connect_timeout: str = "10s") -> BrokerConfig:
    return convert(
        BrokerConfig,
        {"nodes": [f"127.0.0.1:{p}" for p in ports], "connect_timeout": connect_timeout, "round_wait_max": "1s"},
    )


async def _round_trip(client: MqttClient, topic: str) -> None:
    """A message published by the client comes back through its own subscription (restored on this node)."""
    got = asyncio.get_running_loop().create_future()
    client.subscribe(topic, lambda t, p: None if got.done() else got.set_result(p))
    await client.publish(topic, b"hello")
    assert await asyncio.wait_for(got, WAIT_S) == b"hello"


async def test_a_silent_node_and_a_refusing_one_are_passed_over(
    mosquitto: Mosquitto, silent_node: int, caplog: pytest.LogCaptureFixture
) -> None:
    client = MqttClient(_nodes(silent_node, free_port(), mosquitto.port, connect_timeout="1s"), "failover-1")
    with caplog.at_level(logging.WARNING, logger="linewarden.mqtt"):
        await client.start()
        try:
            await async_wait_until(lambda: client.connected, WAIT_S, what="connected to the third node")
            assert client.broker == f"127.0.0.1:{mosquitto.port}"
            await _round_trip(client, "lw-test/failover/1")
        finally:
            await client.stop()
    moves = [r.getMessage() for r in caplog.records if "failed:" in r.getMessage()]
    assert any("no CONNACK within 1 s" in m for m in moves), moves
    assert any("unreachable" in m or "connection lost" in m for m in moves), moves


async def test_a_lost_connection_moves_to_the_next_node_with_the_subscriptions(
    mosquitto: Mosquitto, own_mosquitto: Mosquitto
) -> None:
    own_mosquitto.start()
    client = MqttClient(_nodes(own_mosquitto.port, mosquitto.port), "failover-2")
    connects = 0

    def connected() -> None:
        nonlocal connects
        connects += 1

    client.on_connect = connected
    got: list[bytes] = []
    client.subscribe("lw-test/failover/2", lambda t, p: got.append(p))
    await client.start()
    try:
        await async_wait_until(lambda: client.connected, WAIT_S, what="connected to the first node")
        assert client.broker == f"127.0.0.1:{own_mosquitto.port}"
        own_mosquitto.stop()
        await async_wait_until(
            lambda: client.connected and client.broker == f"127.0.0.1:{mosquitto.port}", WAIT_S, what="second node"
        )
        assert connects == 2, "the connect hook runs on the new node (the agent's birth and resend hang on it)"

        async def delivered() -> bool:
            await client.publish("lw-test/failover/2", b"after")
            await asyncio.sleep(0.1)
            return b"after" in got

        await async_wait_until(delivered, WAIT_S, what="subscription restored on the second node")
    finally:
        await client.stop()


async def test_a_round_of_failures_waits_then_finds_the_node_that_came_up(caplog: pytest.LogCaptureFixture) -> None:
    late = Mosquitto()
    client = MqttClient(_nodes(free_port(), late.port), "failover-3")
    try:
        with caplog.at_level(logging.WARNING, logger="linewarden.mqtt"):
            await client.start()
            await async_wait_until(
                lambda: any("every node failed in turn" in r.getMessage() for r in caplog.records),
                WAIT_S,
                what="a wait after a failed round",
            )
            assert not client.connected
            late.start()
            await async_wait_until(lambda: client.connected, WAIT_S, what="connected once the node is up")
        assert client.broker == f"127.0.0.1:{late.port}"
    finally:
        await client.stop()
        late.cleanup()
