"""Version sources of the patch policy against the simulators: an OPC UA node holding text, a Modbus register
block holding text; a source that cannot be read is left out and changes no state."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from agent.probes.context import ProbeContext
from agent.probes.modbus import register_text
from linewarden.domain import State
from simulators.modbus_plc import ModbusPlc
from simulators.opcua_plc import OpcUaPlc
from tests.integration.probe_helpers import fast_context, probe

UA = "http://opcfoundation.org/UA/"


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    ctx = fast_context()
    yield ctx
    await ctx.close()


def test_register_text() -> None:
    assert register_text([0x5634, 0x2E32, 0x0000]) == "V4.2"
    assert register_text([0x4101, 0x2020]) == "A?"
    assert register_text([0, 0]) == ""


async def test_an_opcua_node_holding_a_version(context: ProbeContext) -> None:
    async with OpcUaPlc("plc", software_version="3.1.4", build_number="9") as plc:
        nodes = [{"what": "software_revision", "namespace_uri": UA, "identifier": "i=2264"},
                 {"what": "firmware_revision", "namespace_uri": UA, "identifier": "i=999999"}]  # fmt: skip
        p = probe(context, type="opcua", endpoint=plc.endpoint, build_info=False, version_nodes=nodes)
        result = await p.poll(time.time())
        assert (result.state, result.versions) == (State.UP, {"software_revision": "3.1.4"})


async def test_modbus_registers_holding_a_version(context: ProbeContext) -> None:
    async with ModbusPlc("gw") as plc:
        await plc.set_version_text("FW 2.10-b7", unit=1)
        p = probe(context, type="modbus", host="127.0.0.1", port=plc.port, unit=1, version_interval="1h",
                  points=[{"name": "status", "address": 1, "condition": {"equals": 1}}],
                  version_registers=[{"what": "firmware", "address": 90, "count": 8},
                                     {"what": "beyond", "address": 98, "count": 8}])  # fmt: skip
        now = time.time()
        first = await p.poll(now)
        assert (first.state, first.versions) == (State.UP, {"firmware": "FW 2.10-b7"})
        await plc.set_version_text("FW 2.11", unit=1)
        assert (await p.poll(now + 1)).versions == {}  # not due: read every version_interval
        assert (await p.poll(now + 3601)).versions == {"firmware": "FW 2.11"}
