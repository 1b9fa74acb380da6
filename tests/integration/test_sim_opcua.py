"""The simulated OPC UA PLC, read by a real asyncua client: address space by namespace URI, server nodes, faults."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import BadTooManyOperations, UaStatusCodeError

from linewarden.errors import SimulatorError
from simulators.opcua_plc import OpcUaPlc
from tests.waiting import async_wait_until

URI = "urn:linewarden:test:plc"


async def _node(client: Client, identifier: str) -> Node:
    idx = await client.get_namespace_index(URI)
    return client.get_node(f"ns={idx};s={identifier}")


def _std(client: Client, object_id: int) -> Node:
    return client.get_node(ua.NodeId(ua.Int32(object_id)))


async def _ticks_pass(client: Client, n: int) -> None:
    """Wait until the PLC's ticker has run `n` more times (it writes CurrentTime on every tick)."""
    current_time = _std(client, ObjectIds.Server_ServerStatus_CurrentTime)
    seen: list[datetime] = [await current_time.read_value()]

    async def advanced() -> bool:
        now = await current_time.read_value()
        if now != seen[-1]:
            seen.append(now)
        return len(seen) > n

    await async_wait_until(advanced, timeout=10, what=f"{n} PLC ticks")


async def test_heartbeat_and_server_nodes_found_by_uri_also_after_restart() -> None:
    async with OpcUaPlc(
        "plc1",
        namespace_uri=URI,
        software_version="3.1.4",
        build_number="314",
        heartbeat_period=0.05,
        shift_namespace=True,
    ) as plc:
        assert plc.endpoint == f"opc.tcp://127.0.0.1:{plc.port}"
        async with Client(plc.endpoint, timeout=5) as client:
            first_index = await client.get_namespace_index(URI)
            assert first_index != 2
            heartbeat = await _node(client, "Heartbeat")
            start = await heartbeat.read_value()
            await async_wait_until(lambda: _greater(heartbeat, start), timeout=10, what="heartbeat to move")
            beat = (await heartbeat.read_data_value()).Value
            assert beat is not None and beat.VariantType == ua.VariantType.UInt32
            assert await (await _node(client, "Running")).read_value() is True
            assert await (await _node(client, "FaultCode")).read_value() == 0
            assert isinstance(await (await _node(client, "Temperature")).read_value(), float)
            assert await _std(client, ObjectIds.Server_ServerStatus_State).read_value() == ua.ServerState.Running
            assert await _std(client, ObjectIds.Server_ServerStatus_BuildInfo_SoftwareVersion).read_value() == "3.1.4"
            assert await _std(client, ObjectIds.Server_ServerStatus_BuildInfo_BuildNumber).read_value() == "314"
            level = await _std(client, ObjectIds.Server_ServiceLevel).read_data_value()
            assert level.Value is not None
            assert (level.Value.Value, level.Value.VariantType) == (255, ua.VariantType.Byte)
            await _ticks_pass(client, 2)

        await plc.restart()
        async with Client(plc.endpoint, timeout=5) as client:
            second_index = await client.get_namespace_index(URI)
            assert second_index not in (2, first_index)
            assert await (await _node(client, "Heartbeat")).read_value() >= start
            # the old index now names a filler namespace without the PLC's nodes
            with pytest.raises(UaStatusCodeError):
                await client.get_node(f"ns={first_index};s=Heartbeat").read_value()


async def _greater(node: Node, than: int) -> bool:
    value: int = await node.read_value()
    return value > than


async def test_degraded_freezes_heartbeat_and_clear_heals() -> None:
    async with OpcUaPlc("plc2", namespace_uri=URI, heartbeat_period=0.05) as plc:
        async with Client(plc.endpoint, timeout=5) as client:
            heartbeat = await _node(client, "Heartbeat")
            await plc.degraded(fault_code=7, service_level=90, stale_heartbeat=True, running=False)
            assert await (await _node(client, "FaultCode")).read_value() == 7
            assert await (await _node(client, "Running")).read_value() is False
            assert await _std(client, ObjectIds.Server_ServiceLevel).read_value() == 90
            frozen = await heartbeat.read_value()
            await _ticks_pass(client, 3)
            assert await heartbeat.read_value() == frozen
            assert await (await _node(client, "Speed")).read_value() == 0.0

            await plc.set_version("3.2.0", "320")
            assert await _std(client, ObjectIds.Server_ServerStatus_BuildInfo_SoftwareVersion).read_value() == "3.2.0"
            assert await _std(client, ObjectIds.Server_ServerStatus_BuildInfo_BuildNumber).read_value() == "320"

            await plc.clear()
            assert await _std(client, ObjectIds.Server_ServiceLevel).read_value() == 255
            assert await (await _node(client, "FaultCode")).read_value() == 0
            await async_wait_until(lambda: _greater(heartbeat, frozen), timeout=10, what="heartbeat to move again")
        with pytest.raises(SimulatorError):
            await plc.degraded(service_level=300)


async def test_down_refuses_connections_until_back_on_the_same_port() -> None:
    async with OpcUaPlc("plc3", namespace_uri=URI, heartbeat_period=0.05) as plc:
        port = plc.port
        await plc.down(seconds=3)  # long enough that the refused connect below lands inside it, however busy
        assert not plc.is_up
        with pytest.raises((OSError, asyncio.TimeoutError)):
            async with Client(plc.endpoint, timeout=2):
                pass
        await async_wait_until(lambda: plc.is_up, timeout=30, what="PLC back after down(3)")
        assert plc.port == port
        async with Client(plc.endpoint, timeout=5) as client:
            assert await (await _node(client, "Running")).read_value() is True


async def test_max_nodes_per_read_and_slow_reads() -> None:
    async with OpcUaPlc("plc4", namespace_uri=URI, heartbeat_period=0.05, max_nodes_per_read=3) as plc:
        async with Client(plc.endpoint, timeout=5) as client:
            limit = _std(client, ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)
            assert await limit.read_value() == 3
            names = ["Heartbeat", "Running", "FaultCode", "Temperature"]
            nodes = [await _node(client, n) for n in names]
            assert len(await client.read_values(nodes[:3])) == 3
            with pytest.raises(BadTooManyOperations):
                await client.read_values(nodes)

            await plc.slow(1000)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(nodes[1].read_value(), timeout=0.2)
            await plc.slow(0)
        # a fresh session: the abandoned slow read may still be in flight on the old one
        async with Client(plc.endpoint, timeout=5) as client:
            assert await (await _node(client, "Running")).read_value() is True
