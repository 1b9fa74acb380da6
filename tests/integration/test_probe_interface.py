"""Interface checks against the MES simulator (version document over HTTP) and the OPC UA PLC simulator."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from agent.probes.context import ProbeContext
from linewarden.domain import State
from simulators.mes import MesServer
from simulators.opcua_plc import OpcUaPlc
from tests.integration.probe_helpers import fast_context, poll_until, probe


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    ctx = fast_context()
    yield ctx
    await ctx.close()


async def test_http_interface_version_and_flow(context: ProbeContext) -> None:
    async with MesServer("mes") as mes:
        p = probe(
            context, type="interface", url=f"{mes.url}/interface", version_pointer="/interface/schema_version",
            expected_version="3.0", last_exchange_pointer="/interface/last_exchange", max_age="5m",
        )
        result = await p.poll(time.time())
        assert (result.state, result.reason) == (State.UP, "")
        assert result.versions == {"interface_version": "3.0"}

        await mes.set_interface("3.1")
        await mes.stall_interface(600)
        result = await p.poll(time.time())
        assert result.state == State.DEGRADED
        assert result.reason.startswith("interface version '3.1', pinned '3.0'; last exchange 60")
        assert result.reason.endswith("s ago (max 300 s)")
        assert result.cause == "interface.mismatch"

        await mes.stop()
        down = await p.poll(time.time())
        assert (down.state, down.reason) == (State.DOWN, "connection refused")


async def test_opcua_interface_datatype_units_and_flow(context: ProbeContext) -> None:
    async with OpcUaPlc("plc", heartbeat_period=0.1) as plc:
        node = {"namespace_uri": plc.namespace_uri, "identifier": "s=Pressure"}
        fine = probe(context, type="interface", id="pressure", endpoint=plc.endpoint, node=node,
                     expected_datatype="Double", expected_engineering_units="bar", max_age="5s")
        result = await fine.poll(time.time())
        assert (result.state, result.reason) == (State.UP, "")
        assert result.versions == {"datatype": "Double", "engineering_units": "bar"}

        pinned_psi = probe(context, type="interface", id="psi", endpoint=plc.endpoint, node=node,
                           expected_datatype="Float", expected_engineering_units="psi")
        result = await pinned_psi.poll(time.time())
        assert result.state == State.DEGRADED
        assert result.reason == "data type 'Double', pinned 'Float'; engineering units 'bar', pinned 'psi'"

        quiet = {"namespace_uri": plc.namespace_uri, "identifier": "s=FaultCode"}  # written at boot only
        stalled = probe(context, type="interface", id="fault", endpoint=plc.endpoint, node=quiet, max_age="300ms")
        result = await poll_until(stalled, State.DEGRADED, what="the unchanging node counted as stalled")
        assert result.reason.startswith("value last changed") and result.cause == "interface.stale"
        assert len(context.opcua_sessions) == 1  # the three checks share the endpoint's session
        await context.close()  # before the server stops: a server with a session open takes seconds to stop
