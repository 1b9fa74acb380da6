"""OPC UA Alarms & Conditions through the agent's probe: the simulated PLC's alarms become states and reasons."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent.probes.context import ProbeContext
from agent.probes.opcua import OpcUaProbe
from linewarden.domain import State
from simulators.opcua_plc import OpcUaPlc
from tests.integration.probe_helpers import fast_context, poll_until, probe

RULES: list[dict[str, Any]] = [
    {"state": "DOWN", "min_severity": 700, "acknowledged": False},
    {"state": "DEGRADED", "min_severity": 100},
]


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    ctx = fast_context()
    yield ctx
    await ctx.close()


async def test_plc_alarms_set_state_and_reason_and_survive_a_reconnect(context: ProbeContext) -> None:
    async with OpcUaPlc("press", heartbeat_period=0.2) as plc:
        made = probe(
            context, type="opcua", endpoint=plc.endpoint, interval="200ms", min_service_level=None,
            alarms={"sources": [{"namespace_uri": plc.namespace_uri, "identifier": "s=press"}], "rules": RULES},
        )
        assert isinstance(made, OpcUaProbe)
        p = made
        assert (await p.poll(time.time())).state == State.UP

        await plc.raise_alarm("OilPressureLow", severity=800, message="Oil pressure below 2.0 bar")
        down = await poll_until(p, State.DOWN, what="DOWN on the unacknowledged alarm")
        assert down.reason == "alarm press/OilPressureLow (severity 800, unacknowledged): Oil pressure below 2.0 bar"
        assert down.cause == "opcua.alarm"

        await plc.acknowledge_alarm("OilPressureLow")  # still active: only the DEGRADED rule matches now
        degraded = await poll_until(p, State.DEGRADED, what="DEGRADED once acknowledged")
        assert degraded.reason.startswith("alarm press/OilPressureLow (severity 800, acknowledged)")

        await plc.raise_alarm("GuardOpen", severity=50, message="below every rule's severity")
        await p.session.drop()  # the next poll opens a new session: the book is rebuilt by ConditionRefresh
        again = await poll_until(p, lambda r: r.state == State.DEGRADED and p.session.generation == 2,
                                 what="DEGRADED again after the reconnect")
        assert again.values["alarms"] == 2
        assert "GuardOpen" not in again.reason

        await plc.clear_alarm("OilPressureLow")  # inactive and acknowledged: gone
        await poll_until(p, State.UP, what="UP once the alarm cleared")
        await p.close()
        await context.close()  # before the server stops: a server with a session open takes seconds to stop
