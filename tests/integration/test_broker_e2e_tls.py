"""Agent → collector end to end through the shipped broker config and ACL: one agent with a password over TLS,
one with a client certificate (mutual TLS), the collector with its certificate and password."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.metrics_http import AgentMetrics
from agent.runtime import Agent
from collector import certificates
from collector.console.users import add_user
from collector.service import CollectorService
from collector.store import open_store
from collector.store.sqlite import SqliteStore
from collector.tokens import create_token
from linewarden.cli import main
from linewarden.config.collector import ApiConfig, CollectorConfig, CollectorSection
from linewarden.config.load import load
from tests.integration.agent_helpers import agent_from
from tests.integration.secure_broker import BROKER_DAYS, ShippedBroker
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker


@pytest.fixture
def broker() -> Iterator[ShippedBroker]:
    b = ShippedBroker(["s1/a1", "s1/a2"])
    b.start()
    yield b
    b.cleanup()


def _agent_toml(broker: ShippedBroker, tmp_path: Path, name: str, mtls: bool) -> Path:
    site, agent = name.split("/")
    ident = broker.identities[name]
    if mtls:
        auth = f'port = {broker.mtls_port}\n[broker.tls]\ncert_file = "{ident.cert}"\nkey_file = "{ident.key}"\n'
    else:
        auth = f'port = {broker.port}\nusername = "{name}"\npassword = {{ file = "{ident.password_file}" }}\n'
        auth += "[broker.tls]\n"
    path = tmp_path / f"{agent}.toml"
    path.write_text(
        f"""
[agent]
id = "{agent}"
site = "{site}"
data_dir = "{tmp_path / agent}"
heartbeat_interval = "1s"

[broker]
host = "127.0.0.1"
keepalive = "5s"
{auth}ca_file = "{broker.ca_file}"

[outbox]
ack_timeout = "2s"

[[assets]]
id = "broker-host"
criticality = "low"

[[targets]]
id = "broker-port"
type = "tcp"
asset = "broker-host"
host = "127.0.0.1"
port = {broker.port}
"""
    )
    return path


async def _collector(broker: ShippedBroker, tmp_path: Path, serve_api: bool = False) -> CollectorService:
    config = CollectorConfig(
        collector=CollectorSection(id="c1", data_dir=tmp_path / "collector"),
        broker=broker.config("collector", port=broker.collector_port, mtls=True),
        api=ApiConfig(host="127.0.0.1", port=0),
    )
    store = SqliteStore(tmp_path / "collector.db")
    store.migrate()
    svc = CollectorService(config, store, serve_api=serve_api)
    await svc.start()
    await async_wait_until(lambda: svc.mqtt.connected, what="collector connected")
    return svc


def _stored(svc: CollectorService, agent: str) -> int:
    return sum(1 for r in svc.store.table_rows("events") if r["agent"] == agent)


def _acked_through(agent: Agent, seq: int) -> Callable[[], bool]:
    return lambda: agent.outbox.stats().last_ack_seq >= seq


def _sees_collector(agent: Agent, online: bool) -> Callable[[], bool]:
    return lambda: agent.forwarder.status().collector_online is online


def _recorded_past(agent: Agent, seq: int) -> Callable[[], bool]:
    return lambda: agent.outbox.stats().next_seq > seq


async def test_agents_reach_the_collector_and_hold_while_it_is_offline(broker: ShippedBroker, tmp_path: Path) -> None:
    svc = await _collector(broker, tmp_path)
    async with (
        agent_from(_agent_toml(broker, tmp_path, "s1/a1", mtls=False)) as a1,
        agent_from(_agent_toml(broker, tmp_path, "s1/a2", mtls=True)) as a2,
    ):
        agents = {"a1": a1, "a2": a2}
        try:
            for name, agent in agents.items():
                await async_wait_until(_acked_through(agent, 1), what=f"{name} acked")
                assert _stored(svc, name) > 0
                # the collector's state reaches the agent through the shipped ACL
                await async_wait_until(_sees_collector(agent, True), what=f"{name} sees the collector online")
        finally:
            await svc.stop()
            svc.store.close()

        for name, agent in agents.items():
            await async_wait_until(_sees_collector(agent, False), what=f"{name} sees the collector offline")
        held = {name: a.forwarder.status().sent_through for name, a in agents.items()}
        for name, agent in agents.items():
            await async_wait_until(_recorded_past(agent, held[name] + 2), what=f"{name} records while it is away")
        assert {name: a.forwarder.status().sent_through for name, a in agents.items()} == held

        svc = await _collector(broker, tmp_path)
        try:
            for name, agent in agents.items():
                target = agent.outbox.stats().next_seq - 1
                await async_wait_until(_acked_through(agent, target), what=f"{name} acked through {target}")
        finally:
            await svc.stop()
            svc.store.close()


def _certificate_ends(exposition: bytes, prefix: str) -> dict[tuple[str, str], float]:
    """The /metrics gauge of certificate ends: (role, subject) → end, epoch seconds."""
    from prometheus_client.parser import text_string_to_metric_families

    name = f"{prefix}_certificate_expiry_timestamp_seconds"
    families = [f for f in text_string_to_metric_families(exposition.decode()) if f.name == name]
    return {(s.labels["role"], s.labels["subject"]): s.value for f in families for s in f.samples}


def _status(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["agent", "status", "--config", str(path), "--format", "json"]) == 0
    status: dict[str, Any] = json.loads(capsys.readouterr().out)
    return status


async def test_agent_status_lists_its_certificates_and_the_brokers(
    broker: ShippedBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _agent_toml(broker, tmp_path, "s1/a2", mtls=True)
    async with agent_from(path) as agent:
        await async_wait_until(lambda: agent.forwarder.status().connected, what="agent connected")

        def peer_seen() -> bool:
            return any(c["role"] == "peer" for c in _status(path, capsys)["certificates"])

        await async_wait_until(peer_seen, what="the broker's certificate in `agent status`")
        ends = _certificate_ends(AgentMetrics(agent, lambda: 0).exposition(), "linewarden_agent")
        assert set(ends) == {("own", "s1/a2"), ("ca", "linewarden test CA"), ("peer", "broker")}
        broker_end = next(c.not_after_ms for c in agent.forwarder.certificates() if c.subject == "broker")
        assert ends[("peer", "broker")] == broker_end / 1000
    status = _status(path, capsys)
    rows = {(c["role"], c["subject"]): c for c in status["certificates"]}
    assert set(rows) == {("own", "s1/a2"), ("ca", "linewarden test CA"), ("peer", "broker")}
    # the broker's certificate runs out within the default 30 days, the agent's own (30 days) just so
    assert rows[("peer", "broker")]["expiring"] and not rows[("ca", "linewarden test CA")]["expiring"]
    assert rows[("peer", "broker")]["days_left"] == BROKER_DAYS - 1
    assert status["summary"]["certificates_expiring"] == 2


async def test_collector_agents_shows_an_agents_expiring_certificates_and_warns_of_its_own(
    broker: ShippedBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ident = broker.identities["collector"]
    path = tmp_path / "collector.toml"
    path.write_text(
        f"""
[collector]
data_dir = "{tmp_path / "collector"}"

[broker]
host = "127.0.0.1"
port = {broker.collector_port}
username = "collector"
password = {{ file = "{ident.password_file}" }}

[broker.tls]
ca_file = "{broker.ca_file}"
cert_file = "{ident.cert}"
key_file = "{ident.key}"

[api]
port = 0

[console]
mfa_required_roles = []
"""
    )
    config = load(CollectorConfig, path)
    svc = CollectorService(config, open_store(config), serve_api=True)
    await svc.start()
    try:
        async with agent_from(_agent_toml(broker, tmp_path, "s1/a2", mtls=True)) as agent:
            epoch = agent.outbox.epoch

            def reported() -> bool:
                return len(certificates.agent_expiring(svc.store, "s1", "a2", epoch)) == 2

            await async_wait_until(reported, what="a heartbeat naming the expiring certificates")
        ends = _certificate_ends(svc.metrics.exposition(), "linewarden_collector")
        assert {("own", "collector"), ("peer", "broker")} <= set(ends)
        add_user(svc.store, "pia", "long enough password", "plant_it", None, (), svc.clock(), "test", "here")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.api_port}/console") as http:
            pre = (await http.get("/login")).text.split('name="pre" value="', 1)[1].split('"', 1)[0]
            form = {"pre": pre, "username": "pia", "password": "long enough password", "next": ""}
            assert (await http.post("/login", data=form)).status_code == 303
            page = (await http.get("/agents")).text
        assert f"own &#39;s1/a2&#39; 29d, peer &#39;broker&#39; {BROKER_DAYS - 1}d" in page, page
    finally:
        await svc.stop()
        svc.store.close()
    assert main(["collector", "agents", "--config", str(path), "--format", "json"]) == 0
    out = capsys.readouterr()
    (row,) = json.loads(out.out)
    # the agent's own certificate (30 days) and the broker's (20 days) are within the default 30 days
    assert row["cert_expiring"] == f"own 's1/a2' 29d, peer 'broker' {BROKER_DAYS - 1}d"
    assert "collector's own certificate 'collector' expires in 29 days" in out.err


async def test_an_agent_hears_its_sites_maintenance_windows_on_its_own_topic(
    broker: ShippedBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped ACL lets an agent read only lw/v1/<site>/<agent>/maintenance: the collector publishes its
    site's windows there at the agent's first birth and again on each change."""
    svc = await _collector(broker, tmp_path, serve_api=True)
    path = _agent_toml(broker, tmp_path, "s1/a1", mtls=False)
    try:
        async with agent_from(path) as agent:
            await async_wait_until(lambda: agent.forwarder.maintenance is not None, what="windows at the first birth")
            assert agent.forwarder.maintenance is not None and agent.forwarder.maintenance.windows == []
            token, _ = create_token(svc.store, "plant", None, "plant-it", svc.clock(), "test", "here")
            start = svc.clock() + 86_400_000
            window = {"site": "s1", "kind": "maintenance", "start": start, "end": start + 3_600_000,
                      "assets": ["broker-host"], "services": [], "reason": "broker patch"}  # fmt: skip
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.api_port}") as http:
                made = await http.post("/maintenance-windows", json=window, headers=headers)
                assert made.status_code == 201, made.text

            def announced() -> bool:
                return bool(_status(path, capsys)["maintenance_windows"])

            await async_wait_until(announced, what="the new window in `agent status`")
    finally:
        await svc.stop()
        svc.store.close()
    [shown] = _status(path, capsys)["maintenance_windows"]
    assert (shown["window"], shown["covers"], shown["reason"]) == (made.json()["id"], "broker-host", "broker patch")
