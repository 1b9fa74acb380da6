"""A device that comes back is noticed at the next poll, whatever its outage lasted: real Modbus and OPC UA
simulators stopped for 5 s, 30 s and 5 min of (injected) time, polled every interval meanwhile. The backoff's
clock is injected, so the outage costs no real waiting; the assertion counts polls, not seconds."""

from __future__ import annotations

import time
from typing import Any

import pytest

from agent.probes.context import ProbeContext
from agent.probes.registry import make_probe
from linewarden.config.agent import Defaults
from linewarden.config.load import convert
from linewarden.domain import State
from simulators.modbus_plc import ModbusPlc
from simulators.opcua_plc import OpcUaPlc
from tests.integration.probe_helpers import target

INTERVAL_S = 2.0
OUTAGES_S = [5.0, 30.0, 300.0]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _polls_until_noticed(sim: Any, fields: dict[str, Any], outage_s: float) -> int:
    """Polls after the device is back until one is UP (1 = the first poll after the return)."""
    clock = FakeClock()
    context = ProbeContext(clock=clock)
    probe = make_probe(target(**fields), convert(Defaults, {"interval": "2s", "timeout": "1s"}), context)
    try:
        assert (await probe.poll(time.time())).state == State.UP
        await sim.down()
        start = clock.now
        while clock.now - start < outage_s:
            clock.now += INTERVAL_S
            result = await probe.poll(time.time())
            assert result.state == State.DOWN, result
        await sim.up()
        for polls in range(1, 20):
            clock.now += INTERVAL_S
            if (await probe.poll(time.time())).state == State.UP:
                return polls
        raise AssertionError("never noticed the device back")
    finally:
        await context.close()


@pytest.mark.parametrize("outage_s", OUTAGES_S)
async def test_modbus_gateway_back_is_noticed_at_the_next_poll(outage_s: float) -> None:
    async with ModbusPlc("gw") as plc:
        fields = {"type": "modbus", "host": plc.host, "port": plc.port, "points": [{"name": "status", "address": 1}]}
        assert await _polls_until_noticed(plc, fields, outage_s) == 1


@pytest.mark.parametrize("outage_s", OUTAGES_S)
async def test_opcua_server_back_is_noticed_at_the_next_poll(outage_s: float) -> None:
    async with OpcUaPlc("plc", heartbeat_period=0.2) as plc:
        fields = {"type": "opcua", "endpoint": plc.endpoint}
        assert await _polls_until_noticed(plc, fields, outage_s) == 1
