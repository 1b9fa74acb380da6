"""`linewarden agent check|status` as a user runs them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from linewarden.cli import main
from simulators.broker import Mosquitto
from simulators.mes import MesServer
from simulators.modbus_plc import ModbusPlc
from tests.integration.agent_helpers import agent_toml
from tests.integration.test_agent_e2e import running_agent
from tests.waiting import async_wait_until


async def test_check_probes_each_target_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with MesServer("mes") as mes, ModbusPlc("gw") as plc:
        await plc.exception(2)
        config = tmp_path / "agent.toml"
        config.write_text(agent_toml(tmp_path / "data", 1, mes=mes, modbus=plc))
        # main() runs its own event loop; run it in a worker thread so the simulators keep serving.
        code = await asyncio.to_thread(main, ["agent", "check", "--config", str(config), "--format", "json"])
    rows = {r["target"]: r for r in json.loads(capsys.readouterr().out)}
    assert code == 1, "a target that is not UP makes check exit 1"
    assert rows["mes-health"]["state"] == "UP" and rows["mes-health"]["latency_ms"] is not None
    assert rows["plc-2-modbus"]["state"] == "DEGRADED"
    assert "modbus exception 2" in rows["plc-2-modbus"]["reason"]
    assert not (tmp_path / "data").exists(), "check does not create the agent's database"


@pytest.mark.broker
async def test_status_reads_the_local_database(
    mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with MesServer("mes") as mes:
        config = tmp_path / "agent.toml"
        config.write_text(agent_toml(tmp_path / "data", mosquitto.port, mes=mes))
        async with running_agent(tmp_path, config.read_text()) as agent:
            await mes.down(None)
            await async_wait_until(lambda: agent.slots["mes-health"].debouncer.state.value == "DOWN", 10)
            await async_wait_until(lambda: agent.outbox.get_state("link") is not None, 5)
    assert main(["agent", "status", "--config", str(config), "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["summary"]["agent"] == "e2e-agent"
    assert status["summary"]["outbox_depth"] >= 0
    assert status["summary"]["broker_connected"] is not None
    assert [t["state"] for t in status["targets"]] == ["DOWN"]
    assert status["open_incidents"][0]["severity"] == "S1"  # critical MES down, always in production


def test_status_without_data_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(agent_toml(tmp_path / "nothing-here", 1, tcp_port=9))
    assert main(["agent", "status", "--config", str(config)]) == 1
    assert "no agent data" in capsys.readouterr().err
