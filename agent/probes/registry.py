"""The table of probe kinds, and how the agent makes and safely polls probes."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from agent.probes.base import Probe, ProbeResult
from agent.probes.context import ProbeContext
from linewarden.config.agent import Defaults
from linewarden.config.targets import TargetConfig
from linewarden.domain import ProbeKind, State

# type → class name; the module is `agent.probes.<type>`, imported only when a target of that kind is
# configured (asyncua alone costs an agent ~24 MB it does not need for Modbus-only hosts).
_CLASSES = {
    ProbeKind.OPCUA: "OpcUaProbe",
    ProbeKind.MODBUS: "ModbusProbe",
    ProbeKind.HTTP: "HttpProbe",
    ProbeKind.TCP: "TcpProbe",
    ProbeKind.PROCESS: "ProcessProbe",
    ProbeKind.HOST: "HostProbe",
    ProbeKind.FILE_AGE: "FileAgeProbe",
    ProbeKind.INTERFACE: "InterfaceProbe",
}
KINDS = frozenset(k.value for k in _CLASSES)


def probe_class(kind: str) -> type[Probe[Any]]:
    cls: type[Probe[Any]] = getattr(importlib.import_module(f"agent.probes.{kind}"), _CLASSES[ProbeKind(kind)])
    return cls


def make_probe(target: TargetConfig, defaults: Defaults, context: ProbeContext) -> Probe[Any]:
    """The probe for one configured target, with the target's timeout and interval or the agent defaults."""
    return probe_class(target.type)(
        target, target.timeout or defaults.timeout, context, target.interval or defaults.interval
    )


async def safe_poll(probe: Probe[Any], now: float) -> ProbeResult:
    """Poll without ever raising: an exception or a hung poll becomes UNKNOWN with the reason."""
    budget = probe.poll_budget()
    try:
        async with asyncio.timeout(budget):  # no extra task per poll, unlike wait_for
            return await polled(probe, now)
    except TimeoutError:
        return hung(budget)


async def polled(probe: Probe[Any], now: float) -> ProbeResult:
    """Poll without raising, except for cancellation: an exception becomes UNKNOWN with the reason. The caller
    bounds it by the probe's poll budget (`safe_poll`, or the agent's poll loop), giving `hung(budget)`."""
    try:
        return await probe.poll(now)
    except TimeoutError:  # as when the budget's timer fires, so both callers say the same
        return hung(probe.poll_budget())
    except Exception as exc:
        return ProbeResult(State.UNKNOWN, f"probe error: {exc!r}", cause="probe.error")


def hung(budget: float) -> ProbeResult:
    """The result of a poll that gave no result within its budget."""
    return ProbeResult(State.UNKNOWN, f"probe error: no result within {budget:g} s", cause="probe.hung")
