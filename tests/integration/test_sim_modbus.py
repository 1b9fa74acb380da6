"""The simulated Modbus gateway, read by a real pymodbus client: register map, word orders, exceptions, outages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from linewarden.errors import SimulatorError
from simulators.modbus_plc import ModbusPlc
from tests.waiting import async_wait_until

INT32 = AsyncModbusTcpClient.DATATYPE.INT32
FLOAT32 = AsyncModbusTcpClient.DATATYPE.FLOAT32
INT16 = AsyncModbusTcpClient.DATATYPE.INT16
UINT32 = AsyncModbusTcpClient.DATATYPE.UINT32


async def _client(plc: ModbusPlc) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient(plc.host, port=plc.port, timeout=10, retries=0, reconnect_delay=0)
    assert await client.connect()
    return client


@pytest.fixture
async def gateway() -> AsyncIterator[ModbusPlc]:
    async with ModbusPlc("gw", units=(1, 2, 3), heartbeat_period=0.05) as plc:
        yield plc


@pytest.mark.parametrize("order", ["big", "little"])
async def test_register_map_decodes_in_the_configured_word_order(order: Literal["big", "little"]) -> None:
    # a long period: the values stay put while the test compares them
    async with ModbusPlc("gw", units=(1, 2), word_order=order, heartbeat_period=3600, firmware=(4, 2)) as plc:
        client = await _client(plc)
        try:
            regs = (await client.read_holding_registers(0, count=32, device_id=2)).registers
            expected = plc.snapshot(2)
            assert regs[1] == 1 and regs[2] == 0
            counter = client.convert_from_registers(regs[10:12], INT32, word_order=order)
            assert counter == expected["counter"] > 0xFFFF
            swapped = client.convert_from_registers(
                regs[10:12], INT32, word_order="big" if order == "little" else "little"
            )
            assert swapped != counter
            temperature = client.convert_from_registers(regs[12:14], FLOAT32, word_order=order)
            assert temperature == pytest.approx(expected["temperature"], rel=1e-6)
            assert client.convert_from_registers(regs[14:15], INT16) == expected["offset"] < 0
            assert client.convert_from_registers(regs[22:24], UINT32, word_order=order) == expected["uptime"]
            assert regs[30:32] == [4, 2]
            inputs = (await client.read_input_registers(0, count=24, device_id=2)).registers
            assert inputs == regs[:24]
            assert (await client.read_coils(0, count=2, device_id=2)).bits[:2] == [True, False]
        finally:
            client.close()


async def test_heartbeat_counts_and_degraded_unit_freezes(gateway: ModbusPlc) -> None:
    client = await _client(gateway)

    async def heartbeat(unit: int) -> int:
        value: int = (await client.read_holding_registers(0, count=1, device_id=unit)).registers[0]
        return value

    async def beyond(unit: int, than: int) -> bool:
        return await heartbeat(unit) > than

    try:
        start = await heartbeat(1)
        await async_wait_until(lambda: beyond(1, start + 2), timeout=10, what="heartbeat of unit 1")

        await gateway.degraded(unit=1, fault_code=5, stale_heartbeat=True, running=False)
        regs = (await client.read_holding_registers(0, count=3, device_id=1)).registers
        assert regs[1:3] == [0, 5]
        assert (await client.read_coils(0, count=2, device_id=1)).bits[:2] == [False, True]
        frozen, other = regs[0], await heartbeat(3)
        await async_wait_until(lambda: beyond(3, other + 3), timeout=10, what="heartbeat of unit 3")
        assert await heartbeat(1) == frozen

        await gateway.set_version(2, 5)
        assert (await client.read_holding_registers(30, count=2, device_id=3)).registers == [2, 5]
        await gateway.clear()
        assert (await client.read_holding_registers(1, count=2, device_id=1)).registers == [1, 0]
    finally:
        client.close()


async def test_injected_exception_codes_per_unit_and_for_all(gateway: ModbusPlc) -> None:
    client = await _client(gateway)
    try:
        await gateway.exception(2, unit=2)
        answer = await client.read_holding_registers(0, count=1, device_id=2)
        assert answer.isError() and answer.exception_code == 2
        assert not (await client.read_holding_registers(0, count=1, device_id=1)).isError()

        await gateway.exception(4)
        assert (await client.read_holding_registers(0, count=1, device_id=1)).exception_code == 4
        assert (await client.read_holding_registers(0, count=1, device_id=3)).exception_code == 4
        assert (await client.read_holding_registers(0, count=1, device_id=2)).exception_code == 2

        await gateway.clear()
        assert not (await client.read_holding_registers(0, count=1, device_id=2)).isError()
        unknown_unit = await client.read_holding_registers(0, count=1, device_id=9)
        assert unknown_unit.exception_code == 11
        outside_map = await client.read_holding_registers(99, count=2, device_id=1)
        assert outside_map.exception_code == 2
        assert (await client.read_holding_registers(99, count=1, device_id=1)).registers == [0]
        with pytest.raises(SimulatorError):
            await gateway.exception(9)
        with pytest.raises(SimulatorError):
            await gateway.exception(2, unit=42)
    finally:
        client.close()


async def test_drop_connections_then_stop_and_start_listening(gateway: ModbusPlc) -> None:
    client = await _client(gateway)
    await gateway.drop_connections()
    await async_wait_until(lambda: not client.connected, timeout=5, what="client to see the drop")
    with pytest.raises(ConnectionException):
        await client.read_holding_registers(0, count=1, device_id=1)
    client.close()

    await gateway.stop_listening()
    refused = AsyncModbusTcpClient(gateway.host, port=gateway.port, timeout=1, retries=0, reconnect_delay=0)
    assert not await refused.connect()
    refused.close()
    await gateway.start_listening()
    client = await _client(gateway)
    assert not (await client.read_holding_registers(0, count=1, device_id=1)).isError()
    client.close()


async def test_delay_times_out_a_client_and_down_comes_back(gateway: ModbusPlc) -> None:
    await gateway.delay(1500)
    client = AsyncModbusTcpClient(gateway.host, port=gateway.port, timeout=0.3, retries=0, reconnect_delay=0)
    # pymodbus uses the one timeout for connecting too, which a busy machine can overrun: try until connected
    await async_wait_until(client.connect, timeout=30, what="connected within a 0.3 s timeout")
    with pytest.raises(ModbusIOException):
        await client.read_holding_registers(0, count=1, device_id=1)
    client.close()
    await gateway.delay(0)

    # Long enough that the refused connect below happens inside it however slow the machine is.
    await gateway.down(seconds=2)
    refused = AsyncModbusTcpClient(gateway.host, port=gateway.port, timeout=1, retries=0, reconnect_delay=0)
    assert not await refused.connect()
    refused.close()
    await async_wait_until(lambda: gateway.listening, timeout=30, what="gateway back after down(2)")
    client = await _client(gateway)
    assert not (await client.read_holding_registers(0, count=1, device_id=2)).isError()
    client.close()
