"""A real agent and a real collector on a three-node NATS cluster (MQTT 3.1.1, JetStream): kill -9 the node the
agent is on mid-stream; the agent moves to the next node, and every event it produced is stored at the collector
exactly once and its outbox drains (docs/broker-cluster.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.runtime import Agent
from collector.service import CollectorService
from collector.store.sqlite import SqliteStore
from linewarden.config.agent import AgentConfig
from linewarden.config.base import BrokerConfig
from linewarden.config.collector import ApiConfig, CollectorConfig, CollectorSection
from linewarden.config.load import convert, load
from simulators.modbus_plc import ModbusPlc
from simulators.nats_cluster import NatsCluster, nats_binary
from tests.integration.agent_helpers import agent_toml
from tests.waiting import async_wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(nats_binary() is None, reason="nats-server is not installed (apt-get install nats-server)"),
]

# Generous: a JetStream leader election after the kill, on a loaded 2-core box.
WAIT_S = 60.0
SITE, AGENT_ID = "plant-e2e", "cluster-agent"


@pytest.fixture
def cluster() -> Iterator[NatsCluster]:
    with NatsCluster() as c:
        yield c


def _broker_lines(nodes: list[str]) -> str:
    listed = ", ".join(f'"{n}"' for n in nodes)
    return f'nodes = [{listed}]\nconnect_timeout = "10s"\nround_wait_max = "2s"\n'


def _stored_seqs(store: SqliteStore, epoch: str) -> list[int]:
    return sorted(
        int(r["seq"])
        for r in store.table_rows("events")
        if r["agent"] == AGENT_ID and r["site"] == SITE and r["epoch"] == epoch
    )


async def test_the_agent_fails_over_when_its_node_is_killed_and_nothing_is_lost(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    n1, n2, n3 = (n.mqtt for n in cluster.nodes)
    db = tmp_path / "collector" / "collector.db"
    db.parent.mkdir()
    store = SqliteStore(db)
    store.migrate()
    collector_cfg = CollectorConfig(
        collector=CollectorSection(id="cluster-collector", data_dir=db.parent),
        broker=convert(BrokerConfig, {"nodes": [n2, n3, n1], "connect_timeout": "10s", "round_wait_max": "2s"}),
        api=ApiConfig(host="127.0.0.1", port=0),
    )
    collector = CollectorService(collector_cfg, store, ticket_poll_s=0.05)
    await collector.start()
    async with ModbusPlc("gw", heartbeat_period=0.1) as plc:
        toml = agent_toml(tmp_path / "agent", 65_000, modbus=plc, agent_id=AGENT_ID)
        toml = toml.replace('host = "127.0.0.1"\nport = 65000\n', _broker_lines([n1, n2, n3]), 1)
        path = tmp_path / "agent.toml"
        path.write_text(toml)
        agent = Agent(load(AgentConfig, path), path)
        task = asyncio.create_task(agent.run())
        try:
            status = agent.forwarder.status
            epoch = agent.outbox.epoch
            await async_wait_until(lambda: collector.mqtt.connected, WAIT_S, what="collector connected")
            await async_wait_until(
                lambda: status().connected and status().last_ack_seq >= 3, WAIT_S, what="agent's first events acked"
            )
            # The first node of its list, unless a fresh cluster closed that first connection while it set up
            # its MQTT streams (then the next).
            on = [n.mqtt for n in cluster.nodes].index(status().broker)

            await plc.exception(4, unit=1)  # the PLC stops as its node dies: the incident is raised during the failover
            sent_before_kill = agent.outbox.stats().next_seq - 1
            cluster.kill(on)
            await async_wait_until(
                lambda: status().connected and status().broker != cluster.nodes[on].mqtt,
                WAIT_S,
                what="agent on another node",
            )
            await async_wait_until(lambda: _incident(store, resolved=False), WAIT_S, what="incident stored")
            await plc.clear()
            await async_wait_until(lambda: _incident(store, resolved=True), WAIT_S, what="restoration stored")

            def drained() -> bool:
                produced = agent.outbox.stats().next_seq - 1
                return agent.outbox.stats().depth == 0 and _stored_seqs(store, epoch) == list(range(1, produced + 1))

            await async_wait_until(drained, WAIT_S, what="outbox drained, every event stored once")
            assert agent.outbox.stats().next_seq - 1 > sent_before_kill + 2, "the stream went on after the kill"
            assert agent.forwarder.connects >= 2, "connected to the first node, then to another"
        finally:
            await agent.stop()
            await asyncio.wait_for(task, 15)
            await collector.stop()
            store.close()


def _incident(store: SqliteStore, resolved: bool) -> bool:
    now = time.time_ns() // 1_000_000 + 1
    found = [i for i in store.incidents(0, now) if i.target == "plc-2-modbus"]
    return len(found) == 1 and (found[0].resolved_at is not None) == resolved
