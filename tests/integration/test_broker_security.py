"""The shipped broker config and ACL over TLS and mutual TLS: what an agent may do, and the attacks it may not."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest

from linewarden.config.base import BrokerConfig
from linewarden.errors import BrokerError
from linewarden.mqtt import MqttClient, Will
from linewarden.wire import (
    COLLECTOR_STATE_TOPIC,
    ack_topic,
    agent_maintenance_topic,
    birth_topic,
    death_topic,
    events_topic,
    maintenance_topic,
)
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
    return msgspec.structs.replace(config, protocol="5")


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


async def test_an_agent_reads_its_ack_the_collector_state_and_its_sites_maintenance_only(
    broker: ShippedBroker, sink: Sink
):
    got: list[str] = []
    agent = MqttClient(broker.config("s1/a1"), "test")
    agent.subscribe("lw/v1/#", lambda topic, _p: got.append(topic))
    mine = (ack_topic("s1", "a1"), agent_maintenance_topic("s1", "a1"), COLLECTOR_STATE_TOPIC)
    others = (ack_topic("s1", "a2"), agent_maintenance_topic("s1", "a2"), agent_maintenance_topic("s2", "a1"),
              maintenance_topic("s1"), maintenance_topic("s2"))  # fmt: skip
    for topic in (*others, *mine):
        await sink.client.publish(topic, b"retained", retain=True)
    await agent.start()
    try:
        await async_wait_until(lambda: len(got) >= len(mine), what="retained messages the agent may read")
        # the broker sends retained messages of one subscription in one go, so nothing else is on its way
        await sink.client.publish(COLLECTOR_STATE_TOPIC, b"online again", retain=True)
        await async_wait_until(lambda: got.count(COLLECTOR_STATE_TOPIC) == 2, what="live collector state")
        assert sorted(set(got)) == sorted(mine)
    finally:
        await agent.stop()
        for topic in (*others, *mine):
            await sink.client.publish(topic, b"", retain=True)


async def test_an_agent_never_receives_another_sites_maintenance(
    broker: ShippedBroker, sink: Sink
):
    """Mosquitto grants the subscription but delivers nothing of it, retained or not (the ACL is checked on
    delivery). Subscribed before its own topic: once its own retained windows arrive, the broker has both."""
    got: list[tuple[str, bytes]] = []
    theirs, mine = agent_maintenance_topic("s2", "a1"), agent_maintenance_topic("s1", "a1")
    await sink.client.publish(theirs, b"site 2's windows", retain=True)
    await sink.client.publish(mine, b"site 1's windows", retain=True)
    agent = MqttClient(_v5(broker.config("s1/a1")), "test")
    for topic in (theirs, mine):
        agent.subscribe(topic, lambda topic, payload: got.append((topic, payload)))
    await agent.start()
    try:
        await async_wait_until(lambda: (mine, b"site 1's windows") in got, what="the agent's own windows")
        await sink.client.publish(theirs, b"site 2's windows changed")
        await sink.client.publish(mine, b"site 1's windows changed")
        await async_wait_until(lambda: (mine, b"site 1's windows changed") in got, what="the agent's own change")
        assert [t for t, _ in got] == [mine, mine]
    finally:
        await agent.stop()
        for topic in (theirs, mine):
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
    config = msgspec.structs.replace(config, tls=msgspec.structs.replace(config.tls, ca_file=tmp_path / "other-ca.pem"))
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


@pytest.mark.postgres
async def test_collectors_sharing_the_ingest_each_take_a_share_through_the_shipped_acl(
    broker: ShippedBroker, postgres_url: str, tmp_path
):
    """`[ingest] share_group`: $share/<group>/lw/v1/... subscriptions of the collector's user are admitted, and
    the broker splits the agent's messages between the two collectors."""
    import psycopg

    from collector.service import CollectorService
    from collector.store.postgres import PostgresStore
    from linewarden.config.collector import CollectorConfig, CollectorSection, IngestConfig
    from linewarden.wire import encode
    from tests.integration.collector_helpers import birth, heartbeats

    schema = f"lw_share_{uuid.uuid4().hex[:12]}"
    services: list[CollectorService] = []
    for name in ("c1", "c2"):
        config = CollectorConfig(
            collector=CollectorSection(id=name, data_dir=tmp_path / name, database_url=postgres_url),
            broker=broker.config("collector", port=broker.collector_port, mtls=True),
            ingest=IngestConfig(share_group="collectors"),
        )
        store = PostgresStore(postgres_url, schema=schema)
        store.migrate()
        services.append(CollectorService(config, store))
    agent = await _connected(broker.config("s1/a1"))
    try:
        for svc in services:
            await svc.start()
        await async_wait_until(lambda: all(svc.mqtt.connected for svc in services), what="collectors connected")
        await agent.publish(birth_topic("s1", "a1"), encode(birth("s1", "a1")))
        born = services[0].store.agents
        await async_wait_until(lambda: any(a.agent == "a1" for a in born()), what="the birth stored")
        for seq in range(1, 9):
            await agent.publish(events_topic("s1", "a1"), heartbeats("s1", "a1", [seq]))

        def stored() -> list[int]:
            return [svc.ingest.events_stored for svc in services]

        await async_wait_until(lambda: sum(stored()) == 8, what="every batch stored once")
        assert all(stored()), f"each collector takes a share: {stored()}"
    finally:
        await agent.stop()
        for svc in services:
            await svc.stop()
            svc.store.close()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
