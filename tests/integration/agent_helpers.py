"""Agent configs for end-to-end tests: every probe kind against real simulators, files and processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from agent.runtime import Agent, TargetSlot
from linewarden.config.agent import AgentConfig
from linewarden.config.load import load
from linewarden.domain import State
from simulators.mes import MesServer
from simulators.modbus_plc import ModbusPlc
from simulators.opcua_plc import OpcUaPlc

INTERVAL_S = 0.2
FAIL_THRESHOLD = 3


def agent_toml(
    data_dir: Path,
    broker_port: int,
    *,
    opcua: OpcUaPlc | None = None,
    modbus: ModbusPlc | None = None,
    mes: MesServer | None = None,
    tcp_port: int | None = None,
    process_name: str | None = None,
    backup_glob: str | None = None,
    agent_id: str = "e2e-agent",
    heartbeat: str = "1s",
) -> str:
    parts = [
        f"""
[agent]
id = "{agent_id}"
site = "plant-e2e"
data_dir = "{data_dir}"
heartbeat_interval = "{heartbeat}"

[broker]
host = "127.0.0.1"
port = {broker_port}
keepalive = "5s"

[outbox]
ack_timeout = "2s"

[defaults]
interval = "{int(INTERVAL_S * 1000)}ms"
timeout = "500ms"
fail_threshold = {FAIL_THRESHOLD}
recover_threshold = 2

[[assets]]
id = "plc-1"
criticality = "critical"

[[assets]]
id = "plc-2"
criticality = "high"

[[assets]]
id = "mes-app"
criticality = "critical"

[[assets]]
id = "host"
criticality = "low"
"""
    ]
    if opcua is not None:
        parts.append(
            f"""
[[targets]]
id = "plc-1-opcua"
type = "opcua"
asset = "plc-1"
endpoint = "{opcua.endpoint}"

[[targets.nodes]]
name = "running"
namespace_uri = "urn:linewarden:sim:plc"
identifier = "s=Running"
condition = {{ equals = true, fail_state = "DOWN" }}
"""
        )
    if modbus is not None:
        parts.append(
            f"""
[[targets]]
id = "plc-2-modbus"
type = "modbus"
asset = "plc-2"
host = "127.0.0.1"
port = {modbus.port}
unit = 1

[[targets.points]]
name = "status"
address = 1
condition = {{ equals = 1, fail_state = "DOWN" }}
"""
        )
    if mes is not None:
        parts.append(
            f"""
[[targets]]
id = "mes-health"
type = "http"
asset = "mes-app"
url = "{mes.url}/health"
json_path = "status"
condition = {{ equals = "ok" }}
"""
        )
    if tcp_port is not None:
        parts.append(
            f"""
[[targets]]
id = "mes-port"
type = "tcp"
asset = "mes-app"
host = "127.0.0.1"
port = {tcp_port}
"""
        )
    if process_name is not None:
        parts.append(
            f"""
[[targets]]
id = "mes-process"
type = "process"
asset = "mes-app"
cmdline_contains = "{process_name}"
"""
        )
    if backup_glob is not None:
        parts.append(
            f"""
[[targets]]
id = "backup"
type = "file_age"
asset = "host"
pattern = "{backup_glob}"
max_age = "1s"
"""
        )
    return "\n".join(parts)


@asynccontextmanager
async def agent_from(path: Path) -> AsyncIterator[Agent]:
    """A real agent on the config file at `path`, running until the block ends."""
    agent = Agent(load(AgentConfig, path), path)
    task = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        await agent.stop()
        await asyncio.wait_for(task, 15)


@asynccontextmanager
async def running_agent(tmp_path: Path, toml: str) -> AsyncIterator[Agent]:
    """A real agent on the config `toml` (written to tmp_path/agent.toml), running until the block ends."""
    path = tmp_path / "agent.toml"
    path.write_text(toml)
    async with agent_from(path) as agent:
        yield agent


def hung_poll_times(slot: TargetSlot, budget_s: float, times: set[int]) -> set[int]:
    """Add the time of the slot's last result to `times` (and return it), after checking that the result is a
    poll ended by its budget: UNKNOWN, `probe.hung`, "no result within" the budget."""
    if slot.last is not None and slot.last_at_ms is not None:
        assert (slot.last.state, slot.last.cause) == (State.UNKNOWN, "probe.hung")
        assert slot.last.reason == f"probe error: no result within {budget_s:g} s"
        times.add(slot.last_at_ms)
    return times
