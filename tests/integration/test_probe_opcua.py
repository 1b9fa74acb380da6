"""OPC UA probe against the simulated PLC (and a secured asyncua server): health, reasons, recovery."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.server.server import Server
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.probes.context import ProbeContext
from agent.probes.opcua import OpcUaProbe
from linewarden.domain import State
from simulators.broker import free_port
from simulators.opcua_plc import OpcUaPlc
from tests.integration.probe_helpers import fast_context, poll_until, probe

URI = "urn:linewarden:sim:plc"
NODES = [
    {"name": "heartbeat", "namespace_uri": URI, "identifier": "s=Heartbeat", "condition": {"must_change_within": "3s"}},
    {"name": "running", "namespace_uri": URI, "identifier": "s=Running", "condition": {"equals": True}},
    {"name": "fault_code", "namespace_uri": URI, "identifier": "s=FaultCode", "condition": {"equals": 0}},
    {"name": "temperature", "namespace_uri": URI, "identifier": "s=Temperature", "condition": {"max": 90}},
]


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    ctx = fast_context()
    yield ctx
    await ctx.close()


def opcua(context: ProbeContext, endpoint: str, **extra) -> OpcUaProbe:
    made = probe(context, type="opcua", endpoint=endpoint, nodes=extra.pop("nodes", NODES), **extra)
    assert isinstance(made, OpcUaProbe)
    return made


async def _up(p: OpcUaProbe) -> bool:
    return (await p.poll(time.time())).state == State.UP


async def test_healthy_plc_is_up_with_versions(context: ProbeContext) -> None:
    async with OpcUaPlc("plc", software_version="2.4.1", build_number="731", shift_namespace=True) as plc:
        p = opcua(context, plc.endpoint)
        result = await p.poll(time.time())
        assert (result.state, result.reason) == (State.UP, "")
        assert result.versions == {"software_version": "2.4.1", "build_number": "731"}
        assert result.values["running"] is True
        assert result.values["heartbeat"] == plc.heartbeat or result.values["heartbeat"] == plc.heartbeat - 1
        await plc.set_version("2.5.0", "800")
        assert (await p.poll(time.time())).versions == {"software_version": "2.5.0", "build_number": "800"}


async def test_reads_split_at_max_nodes_per_read(context: ProbeContext) -> None:
    async with OpcUaPlc("plc", max_nodes_per_read=3) as plc:
        p = opcua(context, plc.endpoint)  # 4 server nodes + 4 configured ones
        result = await p.poll(time.time())
        assert (result.state, result.reason) == (State.UP, "")
        assert p.session.max_nodes_per_read == 3


async def test_degraded_plc(context: ProbeContext) -> None:
    async with OpcUaPlc("plc", heartbeat_period=0.1) as plc:
        p = opcua(context, plc.endpoint)
        start = time.time()
        assert (await p.poll(start)).state == State.UP
        await plc.degraded(fault_code=12, service_level=100, stale_heartbeat=True, running=True)
        await p.poll(start + 1)
        result = await p.poll(start + 10)
        assert result.state == State.DEGRADED
        assert "service level 100 below 200" in result.reason
        assert "fault_code is 12, expected 0" in result.reason
        assert "heartbeat has not changed for" in result.reason


async def test_unknown_node_is_a_named_reason(context: ProbeContext) -> None:
    async with OpcUaPlc("plc") as plc:
        nodes = [{"name": "missing", "namespace_uri": URI, "identifier": "s=NoSuchTag"}]
        result = await opcua(context, plc.endpoint, nodes=nodes).poll(time.time())
        assert (result.state, result.reason) == (State.DEGRADED, "node s=NoSuchTag: BadNodeIdUnknown")


async def test_server_down_then_back_with_new_namespace_index(context: ProbeContext) -> None:
    async with OpcUaPlc("plc", shift_namespace=True) as plc:
        p = opcua(context, plc.endpoint)
        assert await _up(p)
        first_index = plc.namespace_index
        await plc.down()
        result = await p.poll(time.time())
        assert result.state == State.DOWN
        assert result.reason.startswith("connection lost")
        assert (await p.poll(time.time())).reason == "connection refused"
        await plc.up()
        await poll_until(p, State.UP, what="probe back UP after the PLC restart")
        assert plc.namespace_index != first_index
        assert p.session.generation == 2


async def test_restart_recovers_without_help(context: ProbeContext) -> None:
    async with OpcUaPlc("plc", shift_namespace=True) as plc:
        p = opcua(context, plc.endpoint)
        assert await _up(p)
        await plc.restart()
        await poll_until(p, State.UP, what="probe back UP after the restart")
        assert p.session.generation == 2


async def test_subscribed_nodes_come_from_the_subscription(context: ProbeContext) -> None:
    nodes = [{**n, "subscribe": n["name"] == "heartbeat"} for n in NODES]
    async with OpcUaPlc("plc", heartbeat_period=0.1, shift_namespace=True) as plc:
        p = opcua(context, plc.endpoint, nodes=nodes, interval="200ms")
        assert await _up(p)
        assert p.subscriptions_created == 1
        seen = (await p.poll(time.time())).values["heartbeat"]
        await poll_until(p, lambda r: r.values["heartbeat"] > seen, timeout=5, what="a newer heartbeat")
        assert p._cache.values  # the value came from a data change notification, not a Read
        await plc.restart()
        await poll_until(p, State.UP, what="probe back UP after the restart")
        assert p.subscriptions_created == 2
        assert p._subscription is not None


async def _certificate(directory: Path, name: str, uri: str, use) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.pem", directory / f"{name}.der"
    await setup_self_signed_certificate(key, cert, uri, "localhost", [use], {"commonName": name})
    return key, cert


async def test_basic256sha256_sign_and_encrypt(context: ProbeContext, tmp_path: Path) -> None:
    server_key, server_cert = await _certificate(
        tmp_path, "server", "urn:linewarden:test:server", ExtendedKeyUsageOID.SERVER_AUTH
    )
    client_key, client_cert = await _certificate(
        tmp_path, "agent", "urn:linewarden:agent", ExtendedKeyUsageOID.CLIENT_AUTH
    )
    endpoint = f"opc.tcp://127.0.0.1:{free_port('127.0.0.1')}"
    server = Server()
    await server.init()
    server.set_endpoint(endpoint)
    server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    await server.load_certificate(str(server_cert))
    await server.load_private_key(str(server_key))
    idx = await server.register_namespace(URI)
    await server.nodes.objects.add_variable(ua.NodeId.from_string(f"ns={idx};s=Running"), "Running", True)
    async with server:
        secured = {
            "security_policy": "Basic256Sha256",
            "security_mode": "SignAndEncrypt",
            "certificate": str(client_cert),
            "private_key": str(client_key),
            "server_certificate": str(server_cert),
            "min_service_level": None,
        }
        nodes = [{"name": "running", "namespace_uri": URI, "identifier": "s=Running", "condition": {"equals": True}}]
        result = await opcua(context, endpoint, nodes=nodes, **secured).poll(time.time())
        assert (result.state, result.reason) == (State.UP, "")
        insecure = await opcua(context, endpoint, nodes=nodes, id="plain").poll(time.time())
        assert insecure.state == State.DOWN
