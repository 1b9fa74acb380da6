"""The table of probe kinds, and how the agent makes and safely polls probes."""

from __future__ import annotations

import asyncio
from typing import Any

from agent.probes.base import Probe, ProbeResult
from agent.probes.context import ProbeContext
from agent.probes.file_age import FileAgeProbe
from agent.probes.host import HostProbe
from agent.probes.http import HttpProbe
from agent.probes.modbus import ModbusProbe
from agent.probes.opcua import OpcUaProbe
from agent.probes.process import ProcessProbe
from agent.probes.tcp import TcpProbe
from linewarden.config.agent import Defaults
from linewarden.config.targets import TargetConfig
from linewarden.domain import State

PROBES: dict[str, type[Probe[Any]]] = {
    probe.kind: probe for probe in (OpcUaProbe, ModbusProbe, HttpProbe, TcpProbe, ProcessProbe, HostProbe, FileAgeProbe)
}


def make_probe(target: TargetConfig, defaults: Defaults, context: ProbeContext) -> Probe[Any]:
    """The probe for one configured target, with the target's timeout or the agent default."""
    return PROBES[target.type](target, target.timeout or defaults.timeout, context)


async def safe_poll(probe: Probe[Any], now: float) -> ProbeResult:
    """Poll without ever raising: an exception or a hung poll becomes UNKNOWN with the reason."""
    budget = probe.poll_budget()
    try:
        return await asyncio.wait_for(probe.poll(now), budget)
    except TimeoutError:
        return ProbeResult(State.UNKNOWN, f"probe error: no result within {budget:g} s")
    except Exception as exc:
        return ProbeResult(State.UNKNOWN, f"probe error: {exc!r}")
