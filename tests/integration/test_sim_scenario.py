"""Plant and scenario files, the scenario runner (injected clock and real, compressed), the control API and CLI."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from linewarden.config.load import read_toml
from linewarden.errors import ConfigError, SimulatorError
from simulators import cli
from simulators.broker import free_port
from simulators.config import (
    ScenarioConfig,
    check_sim_file,
    detect_sim_kind,
    load_plant,
    load_scenario,
)
from simulators.fault_spec import FaultSpec
from simulators.mes import MesServer
from simulators.modbus_plc import ModbusPlc
from simulators.opcua_plc import OpcUaPlc
from simulators.plant import Plant
from simulators.scenario import Applied, ScenarioRunner, timeline
from tests.waiting import async_wait_until, wait_until

ROOT = Path(__file__).resolve().parents[2]
LINE_OUTAGE = ROOT / "config" / "scenarios" / "line-outage.toml"
SHORT = ROOT / "config" / "scenarios" / "short-test.toml"


class FakeClock:
    """Time that moves only when the runner sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """A FaultTarget that notes what arrives, and when on the fake clock."""

    def __init__(self, clock: FakeClock, kinds: dict[str, str]) -> None:
        self.clock = clock
        self.kinds = kinds
        self.seen: list[tuple[float, str, str]] = []

    async def device_kinds(self) -> dict[str, str]:
        return self.kinds

    async def apply(self, device: str, spec: FaultSpec) -> None:
        if spec.fault == "restart" and device == "plc3":
            raise SimulatorError("refused on purpose")
        self.seen.append((self.clock.now - 1000.0, device, spec.describe()))


LINE3 = {"plc1": "opcua", "plc3": "opcua", "gw1": "modbus", "mes": "mes"}


def test_shipped_files_validate_and_are_detected() -> None:
    for path, kind in ((ROOT / "config" / "plant.toml", "plant"), (LINE_OUTAGE, "scenario"), (SHORT, "scenario")):
        check_sim_file(path, kind)
        assert detect_sim_kind(read_toml(path), source=str(path)) == kind
    plant = load_plant(ROOT / "config" / "plant.toml")
    assert {d.name: d.kind for d in plant.device} == LINE3
    with pytest.raises(ConfigError, match=r"x\.toml"):
        detect_sim_kind({"something": {}}, source="x.toml")


def test_bad_files_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "s.toml"
    bad.write_text('[scenario]\nname = "s"\n[[step]]\nat = "1s"\ndevice = "mes"\nfault = "slow"\nseconds = 3\n')
    with pytest.raises(ConfigError, match=r"s\.toml: step\[0\].*'slow' does not take seconds"):
        check_sim_file(bad, "scenario")
    bad.write_text(
        '[scenario]\nname = "s"\n[[step]]\nat = "5s"\nuntil = "2s"\ndevice = "mes"\nfault = "slow"\nms = 1\n'
    )
    with pytest.raises(ConfigError, match="'until' must be later than 'at'"):
        check_sim_file(bad, "scenario")
    plant = tmp_path / "p.toml"
    plant.write_text('[plant]\nname = "p"\ncontrol_port = 9000\n[[device]]\nkind = "mes"\nname = "a"\nport = 9000\n')
    with pytest.raises(ConfigError, match="two listeners on port 9000"):
        check_sim_file(plant, "plant")
    plant.write_text('[plant]\nname = "p"\n[[device]]\nkind = "plc"\nname = "a"\nport = 1\n')
    with pytest.raises(ConfigError, match=r"device\[0\]"):
        check_sim_file(plant, "plant")


async def test_timeline_order_scaling_and_reverts_on_an_injected_clock() -> None:
    scenario = load_scenario(LINE_OUTAGE)
    clock = FakeClock()
    target = Recorder(clock, LINE3)
    runner = ScenarioRunner(target, scenario, speed=10, clock=clock, sleep=clock.sleep)
    applied = await runner.run()

    times = [t for t, _, _ in target.seen]
    assert times == sorted(times)
    assert target.seen[0] == (2.0, "plc3", "down seconds=4.5")  # at 20 s, 45 s down, both compressed ten times
    assert (6.0, "mes", "slow ms=800") in target.seen  # latency is not compressed
    assert (9.0, "mes", "slow ms=0") in target.seen  # `until` ends the slow window
    assert (16.0, "gw1", "clear") in target.seen
    failed = [a for a in applied if a.error]
    assert [(a.action.device, a.action.spec.fault, a.error) for a in failed] == [
        ("plc3", "restart", "refused on purpose")
    ]
    assert len(applied) == len(timeline(scenario)) == len(target.seen) + 1


async def test_check_refuses_unknown_devices_and_unsupported_faults() -> None:
    scenario = ScenarioConfig.model_validate(
        {"scenario": {"name": "x"}, "step": [{"at": "1s", "device": "mes", "fault": "exception", "code": 2}]}
    )
    clock = FakeClock()
    with pytest.raises(SimulatorError, match="mes device has no fault 'exception'"):
        await ScenarioRunner(Recorder(clock, {"mes": "mes"}), scenario, clock=clock, sleep=clock.sleep).run()
    with pytest.raises(SimulatorError, match="no device 'mes'"):
        await ScenarioRunner(Recorder(clock, {}), scenario, clock=clock, sleep=clock.sleep).run()


async def test_compressed_scenario_applies_faults_to_a_real_plant() -> None:
    plant = Plant(
        [
            OpcUaPlc("plc1", heartbeat_period=0.05),
            ModbusPlc("gw1", heartbeat_period=0.05),
            MesServer("mes"),
        ]
    )
    events: list[tuple[str, str, bool]] = []
    async with plant:
        gw1, mes = plant.devices["gw1"], plant.devices["mes"]

        def observe(done: Applied) -> None:
            events.append((done.action.device, done.action.spec.fault, bool(gw1.status()["listening"])))

        runner = ScenarioRunner(plant, load_scenario(SHORT), speed=20, on_applied=observe)
        applied = await runner.run()
        assert all(a.error is None for a in applied)
        assert [(d, f) for d, f, _ in events] == [
            ("plc1", "set_version"),
            ("mes", "slow"),
            ("gw1", "down"),
            ("mes", "slow"),
            ("mes", "degraded"),
            ("mes", "clear"),
        ]
        assert events[2][2] is False  # gateway stopped listening at its step
        assert plant.devices["plc1"].status()["software_version"] == "9.9.9"
        assert mes.status()["health"] == "ok" and mes.status()["slow_ms"] == 0
        await async_wait_until(lambda: gw1.status()["listening"], timeout=5, what="gateway back after 1 s / 20")


def test_control_api_and_cli_against_a_plant_process(tmp_path: Path) -> None:
    control_port, gw_port, mes_port = free_port(), free_port(), free_port()
    plant_file = tmp_path / "plant.toml"
    plant_file.write_text(
        f'[plant]\nname = "t"\ncontrol_port = {control_port}\n'
        f'[[device]]\nkind = "modbus"\nname = "gw1"\nport = {gw_port}\n'
        f'[[device]]\nkind = "mes"\nname = "mes"\nport = {mes_port}\n'
    )
    scenario_file = tmp_path / "s.toml"
    scenario_file.write_text(
        '[scenario]\nname = "s"\n'
        '[[step]]\nat = "0s"\ndevice = "gw1"\nfault = "exception"\ncode = 4\nunit = 2\n'
        '[[step]]\nat = "100ms"\ndevice = "mes"\nfault = "set_version"\nversion = "6.0.0"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "linewarden.cli", "sim", "plant", "--config", str(plant_file)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    stdout = proc.stdout
    assert stdout is not None
    threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True).start()
    try:
        wait_until(lambda: "ready\n" in lines or proc.poll() is not None, timeout=20, what="plant ready")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        url = f"http://127.0.0.1:{control_port}"
        assert f"control {url}\n" in lines
        assert f"mes mes http://127.0.0.1:{mes_port}\n" in lines

        with httpx.Client(base_url=url, timeout=5, trust_env=False) as http:
            devices = http.get("/devices").json()["devices"]
            assert {d["name"]: d["kind"] for d in devices} == {"gw1": "modbus", "mes": "mes"}
            bad = http.post("/devices/mes/faults", json={"fault": "exception", "code": 2})
            assert bad.status_code == 400 and "no fault 'exception'" in bad.json()["error"]
            assert http.post("/devices/nope/faults", json={"fault": "clear"}).status_code == 404
            assert http.post("/devices/mes/faults", json={"fault": "slow"}).status_code == 400

            assert cli.main(["fault", "mes", "degraded", "--component", "queue", "--control", url]) == 0
            health = httpx.get(f"http://127.0.0.1:{mes_port}/health", trust_env=False).json()
            assert health["components"]["queue"] == "degraded"
            assert cli.main(["fault", "mes", "slow", "--seconds", "3", "--control", url]) == 2

            assert cli.main(["scenario", str(scenario_file), "--control", url, "--speed", "10"]) == 0
            gw1 = http.get("/devices/gw1").json()
            assert gw1["exceptions"] == {"2": 4}
            assert httpx.get(f"http://127.0.0.1:{mes_port}/version", trust_env=False).json()["version"] == "6.0.0"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
    assert code == 0
