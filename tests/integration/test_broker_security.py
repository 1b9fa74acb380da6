"""The shipped broker config and ACL over TLS and mutual TLS: what an agent may do, and the attacks it may not."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator

import pytest

from linewarden.config.base import BrokerConfig
from linewarden.errors import BrokerError
from linewarden.mqtt import MqttClient, Will
from linewarden.wire import COLLECTOR_STATE_TOPIC, ack_topic, birth_topic, death_topic, events_topic, maintenance_topic
from tests.integration.secure_broker import ShippedBroker
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker

AGENTS = ["s1/a1", "s1/a2", "s2/a1"]


@pytest.fixture(scope="module")
def broker() -> Iterator[ShippedBroker]:
    b = ShippedBroker(AGENTS)
    b.start()
    yield b
    b.cleanup()


async def _connected(config: BrokerConfig, client_id: str = "test", will: Will | None = None) -> MqttClient:
    client = MqttClient(config, client_id, will)
    await client.start()
    await async_wait_until(lambda: client.connected, what=f"connected to {config.port} as {config.username}")
    return client


class Sink:
    """The collector's view: every message under lw/v1/, in the order the broker delivered them."""

    def __init__(self, client: MqttClient) -> None:
        self.client = client
        self.messages: list[tuple[str, bytes]] = []
        client.subscribe("lw/v1/#", lambda topic, payload: self.messages.append((topic, payload)))

    def topics(self) -> list[str]:
        return [t for t, _ in self.messages]

    async def synced(self) -> None:
        """Wait until the subscription is in force: the sink hears its own message."""
        await self.client.publish("lw/v1/test/sync", b"sync")
        await async_wait_until(lambda: "lw/v1/test/sync" in self.topics(), what="sink subscribed")

    async def receives(self, topic: str, payload: bytes) -> None:
        await async_wait_until(lambda: (topic, payload) in self.messages, what=f"{payload!r} on {topic}")


@pytest.fixture
async def sink(broker: ShippedBroker) -> AsyncIterator[Sink]:
    client = MqttClient(broker.config("collector", port=broker.collector_port, mtls=True), "test-sink")
    s = Sink(client)
    await client.start()
    await async_wait_until(lambda: client.connected, what="sink connected")
    await s.synced()
    yield s
    await client.stop()


def _v5(config: BrokerConfig) -> BrokerConfig:
    return config.model_copy(update={"protocol": "5"})


@pytest.mark.parametrize("mtls", [False, True], ids=["password", "certificate"])
async def test_an_agent_cannot_publish_under_another_site_or_agent(broker: ShippedBroker, sink: Sink, mtls: bool):
    config = broker.config("s1/a1", port=broker.mtls_port, mtls=True) if mtls else broker.config("s1/a1")
    agent = await _connected(_v5(config))
    try:
        for forged in (events_topic("s2", "a1"), events_topic("s1", "a2"), birth_topic("s2", "a1"),
                       death_topic("s1", "a2"), ack_topic("s1", "a1"), COLLECTOR_STATE_TOPIC):  # fmt: skip
            with pytest.raises(BrokerError, match="refused"):
                await agent.publish(forged, b"forged")
        await agent.publish(events_topic("s1", "a1"), b"mine")
        await sink.receives(events_topic("s1", "a1"), b"mine")
        assert (b"forged") not in [p for _, p in sink.messages]
    finally:
        await agent.stop()


async def test_an_agent_reads_its_ack_the_collector_state_and_maintenance_but_not_other_acks(
    broker: ShippedBroker, sink: Sink
):
    got: list[str] = []
    agent = MqttClient(broker.config("s1/a1"), "test")
    agent.subscribe("lw/v1/#", lambda topic, _p: got.append(topic))
    await sink.client.publish(ack_topic("s1", "a2"), b"other agent's ack", retain=True)
    await sink.client.publish(ack_topic("s1", "a1"), b"own ack", retain=True)
    await sink.client.publish(maintenance_topic("s1"), b"windows", retain=True)
    await sink.client.publish(COLLECTOR_STATE_TOPIC, b"online", retain=True)
    await agent.start()
    try:
        await async_wait_until(lambda: len(got) >= 3, what="retained messages the agent may read")
        # the broker sends retained messages of one subscription in one go, so nothing else is on its way
        await sink.client.publish(COLLECTOR_STATE_TOPIC, b"online again", retain=True)
        await async_wait_until(lambda: got.count(COLLECTOR_STATE_TOPIC) == 2, what="live collector state")
        assert sorted(set(got)) == sorted({ack_topic("s1", "a1"), maintenance_topic("s1"), COLLECTOR_STATE_TOPIC})
    finally:
        await agent.stop()
        for topic in (ack_topic("s1", "a2"), ack_topic("s1", "a1"), maintenance_topic("s1"), COLLECTOR_STATE_TOPIC):
            await sink.client.publish(topic, b"", retain=True)


@pytest.mark.parametrize("mtls", [False, True], ids=["password", "certificate"])
async def test_taking_over_an_agents_client_id_does_not_disconnect_it(broker: ShippedBroker, sink: Sink, mtls: bool):
    victim = await _connected(broker.config("s1/a1"), "lw-agent-s1-a1", Will(death_topic("s1", "a1"), b"victim's will"))
    drops: list[int] = []
    victim.on_disconnect = lambda: drops.append(1)
    attackers: list[MqttClient] = []
    try:
        for client_id in ("lw-agent-s1-a1", "s1/a1"):
            config = broker.config("s1/a2", port=broker.mtls_port, mtls=True) if mtls else broker.config("s1/a2")
            attacker = await _connected(config, client_id)
            attackers.append(attacker)
            await attacker.publish(birth_topic("s1", "a2"), client_id.encode())
            await sink.receives(birth_topic("s1", "a2"), client_id.encode())
            # a PUBACK comes back only over a connection the broker has not closed
            await victim.publish(events_topic("s1", "a1"), b"still here " + client_id.encode())
        assert drops == [] and victim.connected
        assert death_topic("s1", "a1") not in sink.topics()
    finally:
        for client in (*attackers, victim):
            await client.stop()


async def test_an_agent_cannot_log_in_where_the_collector_does(broker: ShippedBroker):
    """On the collector's listener client ids are free; agents' credentials do not work there."""
    attacker = MqttClient(broker.config("s1/a1", port=broker.collector_port, mtls=True), "linewarden-collector-c1")
    await attacker.start()
    try:
        await async_wait_until(lambda: attacker.failed_connects >= 1, what="refused")
        assert not attacker.connected
    finally:
        await attacker.stop()


async def test_unknown_ca_is_refused_even_without_the_host_name_check(broker: ShippedBroker, tmp_path):
    from linewarden import certs

    other = certs.new_authority("somebody else", dt.datetime.now(dt.UTC), 30)
    (tmp_path / "other-ca.pem").write_bytes(other.cert_pem)
    config = broker.config("s1/a1", verify_hostname=False)
    assert config.tls is not None
    config = config.model_copy(update={"tls": config.tls.model_copy(update={"ca_file": tmp_path / "other-ca.pem"})})
    client = MqttClient(config, "test")
    await client.start()
    try:
        await async_wait_until(lambda: client.failed_connects >= 1, what="refused")
        assert not client.connected
    finally:
        await client.stop()


@pytest.mark.parametrize("verify_hostname", [True, False])
async def test_verify_hostname_false_accepts_a_certificate_for_another_name(broker: ShippedBroker, verify_hostname):
    # the broker's certificate names 127.0.0.1 only
    client = MqttClient(broker.config("s1/a1", host="localhost", verify_hostname=verify_hostname), "test")
    await client.start()
    try:
        await async_wait_until(lambda: client.connected or client.failed_connects >= 1, what="an outcome")
        assert client.connected is not verify_hostname
    finally:
        await client.stop()


async def test_agent_publishes_under_its_own_name_concurrently_with_others(broker: ShippedBroker, sink: Sink):
    """Two agents of one site and one of another, each under its own identity, at once."""
    clients = [await _connected(broker.config(name)) for name in AGENTS]
    try:
        pairs = zip(clients, AGENTS, strict=True)
        await asyncio.gather(*(c.publish(events_topic(*n.split("/")), n.encode()) for c, n in pairs))
        for name in AGENTS:
            await sink.receives(events_topic(*name.split("/")), name.encode())
    finally:
        for c in clients:
            await c.stop()


async def test_the_collector_and_its_command_line_tools_connect_at_once(broker: ShippedBroker, sink: Sink):
    """Client ids are free on the collector's listener: `collector maintenance` does not push the service off."""
    config = broker.config("collector", port=broker.collector_port, mtls=True)
    drops: list[int] = []
    sink.client.on_disconnect = lambda: drops.append(1)
    tool = await _connected(config, "lw-maintenance-s1")
    try:
        await tool.publish(maintenance_topic("s1"), b"windows", retain=True)
        await sink.receives(maintenance_topic("s1"), b"windows")
        await sink.client.publish(events_topic("s1", "a1"), b"service still connected")
        assert drops == [] and sink.client.connected
    finally:
        await sink.client.publish(maintenance_topic("s1"), b"", retain=True)
        await tool.stop()
