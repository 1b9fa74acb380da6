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
from tests.integration.agent_helpers import agent_toml, running_agent
from tests.waiting import async_wait_until


async def test_check_probes_each_target_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with MesServer("mes") as mes, ModbusPlc("gw") as plc:
        await plc.exception(2)
        config = tmp_path / "agent.toml"
        config.write_text(agent_toml(tmp_path / "data", 1, mes=mes, modbus=plc))
        # main() runs its own event loop; run it in a worker thread so the simulators keep serving.
        code = await asyncio.to_thread(main, ["agent", "check", "--config", str(config), "--format", "json"])
    out = capsys.readouterr()
    rows = {r["target"]: r for r in json.loads(out.out)}
    assert code == 1, "a target that is not UP makes check exit 1"
    assert rows["mes-health"]["state"] == "UP" and rows["mes-health"]["latency_ms"] is not None
    # an illegal register address on a target check has never seen working: the config's mistake, said plainly
    modbus = rows["plc-2-modbus"]
    assert (modbus["state"], modbus["cause"]) == ("UNKNOWN", "config.illegal_address")
    assert modbus["reason"].startswith("configuration: modbus exception 2 (illegal data address)")
    assert "plc-2-modbus: the agent config is wrong here, not the device" in out.err
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
