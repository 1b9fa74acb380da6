"""The whole agent against a real OPC UA simulator and broker: a namespace URI the server does not have, on a
target never seen working, goes on the wire as UNKNOWN by configuration and a plant-IT configuration incident,
never as a vendor outage."""

from __future__ import annotations

from pathlib import Path

import pytest

from linewarden.domain import State
from simulators.broker import Mosquitto
from simulators.opcua_plc import OpcUaPlc
from tests.ackers import Acker
from tests.integration.agent_helpers import agent_toml, running_agent
from tests.integration.test_agent_e2e import WAIT_S, _changes, _opened, acker
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker
__all__ = ["acker"]  # the fixture


async def test_wrong_namespace_is_plant_its_not_the_vendors(acker: Acker, mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with OpcUaPlc("plc1", heartbeat_period=0.1) as plc:
        toml = agent_toml(tmp_path / "data", mosquitto.port, opcua=plc).replace("urn:linewarden:sim:plc", "urn:typo")
        async with running_agent(tmp_path, toml):
            await async_wait_until(lambda: _opened(acker), WAIT_S, what="an incident")
    [opened] = _opened(acker)
    assert (opened.body.kind, opened.body.target, opened.body.state) == ("configuration", "plc-1-opcua", State.UNKNOWN)
    assert opened.body.cause == "config.unknown_namespace"
    [change] = [c for c in _changes(acker) if c.body.target == "plc-1-opcua"]
    assert (change.body.from_, change.body.to, change.body.cause) == (State.UNKNOWN, State.UNKNOWN, opened.body.cause)
    assert change.body.reason == "configuration: namespace urn:typo is not on the server"
