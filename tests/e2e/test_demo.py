"""`linewarden demo --fast` end to end, as a user runs it: a subprocess with its embedded broker, simulators,
agent, collector and vendors; then `linewarden collector report --format json` on the folder it leaves. Run
again in the same folder, it ends as it does for a user: with the console on the demo's data, a login that
works, and a clean stop when interrupted."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.publish as paho_publish
import pytest

from linewarden.wire import COLLECTOR_STATE_TOPIC
from simulators.broker import Mosquitto
from simulators.demo import main as demo_main
from simulators.demo_files import shipped

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
LINEWARDEN = "import sys; from linewarden.cli import main; sys.exit(main())"


def _linewarden(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LINEWARDEN, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def _run_demo(data: Path, *extra: str) -> tuple[str, list[dict[str, Any]]]:
    """Run the demo into `data`; return its screen output and the JSON report of the month it names."""
    demo = _linewarden("demo", "--fast", "--no-console", "--data-dir", str(data), *extra, timeout=120)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    return demo.stdout, _report(data, demo.stdout)


def _report(data: Path, screen: str) -> list[dict[str, Any]]:
    """The JSON report of the month the demo's screen output names, as the command it prints gives it."""
    command = next(line.split() for line in screen.splitlines() if "collector report --config" in line)
    period = command[command.index("--period") + 1]
    assert command[command.index("--config") + 1] == str(data / "collector.toml")
    report = _linewarden(
        "collector", "report", "--config", str(data / "collector.toml"), "--period", period, "--format", "json",
        timeout=60,
    )
    assert report.returncode == 0, report.stderr
    found: list[dict[str, Any]] = json.loads(report.stdout)
    return found


def _by_contract(reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["contract_id"]: r for r in reports}


@pytest.mark.broker
@pytest.mark.timeout(360)  # two whole demo runs and a report each: minutes on a busy machine
def test_the_demo_tells_the_story_and_leaves_a_report_with_credits_and_runs_again(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    data = tmp_path / "demo"
    screen, reports = _run_demo(data)
    by = _by_contract(reports)
    assert set(by) == {"acme-mes", "integrator-plc"}
    plc, mes = by["integrator-plc"], by["acme-mes"]

    # The PLC outage during the shift: an S1 ticket; the planned stop inside the approved window: no ticket,
    # so no root-cause report is owed for it either.
    outage = [i for i in plc["incidents"] if i["asset"] == "line2-plc"]
    assert len(outage) == 1 and outage[0]["severity"] == "S1" and outage[0]["notified_ms"] is not None
    planned = [i for i in plc["incidents"] if i["asset"] == "line1-plc"]
    assert len(planned) == 1 and planned[0]["notified_ms"] is None and planned[0]["rca"] is None
    assert any(e["reason"] == "maintenance" and e["scope"] == "line1-plc" for e in plc["exclusions"])

    # The window announced 1 h ahead does not excuse the outage inside it.
    (short,) = plc["short_notice"]
    assert short["window"] == "mw-line2-short" and Decimal(short["downtime_ms"]) > 0

    # The MES slow: DEGRADED, an S2 ticket acknowledged after its response target.
    (slow,) = mes["incidents"]
    assert slow["asset"] == "mes-app" and slow["severity"] == "S2"
    assert slow["acknowledged_ms"] is not None and slow["response"]["met"] is False

    assert Decimal(mes["credits"]["total"]) > 0 and Decimal(plc["credits"]["total"]) > 0
    for line in ("ESCALATION", "ACME acknowledges", "webhook received ticket.created", "SLA report for"):
        assert line in screen

    # The month is not over: a partial period as of now, and every line says how little of it was watched.
    assert all(r["partial"] for r in reports) and "partial period, as of" in screen
    for line in (u for r in reports for u in r["uptime"]):
        assert line["observed_pct"] is None or Decimal(line["observed_pct"]) < 100, line
        assert line["covered_ms"] > line["observed_ms"] + line["maintenance_ms"], line

    # Again, in the same folder (wiped and rebuilt, not added to), on an external broker this time, and as a
    # user runs it: ending with the console, served on the demo's data until interrupted.
    try:
        screen = _run_demo_to_its_console(data, "--broker", f"{mosquitto.host}:{mosquitto.port}")
    finally:  # the session broker is shared: leave no retained "collector offline" behind
        paho_publish.single(COLLECTOR_STATE_TOPIC, b"", retain=True, hostname=mosquitto.host, port=mosquitto.port)
    assert f"{mosquitto.host}:{mosquitto.port}" in screen and "amqtt" not in screen
    assert [len(r["incidents"]) for r in _by_contract(_report(data, screen)).values()] == [
        len(r["incidents"]) for r in by.values()
    ]


def _run_demo_to_its_console(data: Path, *extra: str) -> str:
    """Run the demo with its console; log in with the login it prints, look, interrupt it; its screen output."""
    screen = data.parent / "screen.txt"
    with screen.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", LINEWARDEN, "demo", "--fast", "--data-dir", str(data), *extra],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 150
        found = None
        while found is None:
            assert proc.poll() is None, screen.read_text()[-3000:]
            assert time.monotonic() < deadline, screen.read_text()[-3000:]
            found = re.search(r"(http://127\.0\.0\.1:\d+/console/)\n\s+log in as 'demo' with password '([^']+)'",
                              screen.read_text())
            time.sleep(0.5)
        url, password = found.group(1), found.group(2)
        with httpx.Client(base_url=url.rstrip("/"), timeout=10) as client:
            pre = client.get("/login").text.split('name="pre" value="', 1)[1].split('"', 1)[0]
            login = client.post("/login", data={"pre": pre, "username": "demo", "password": password})
            assert login.status_code == 303, login.text
            overview = client.get("/")
            assert overview.status_code == 200 and "mes-app" in overview.text and "line2-plc" in overview.text
            assert "acme-mes" in client.get("/contracts").text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, screen.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = screen.read_text()
    assert "console stopped" in text
    return text


def test_the_demo_refuses_to_wipe_a_folder_that_is_not_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "thesis.txt").write_text("years of work")
    assert demo_main(["--no-console", "--data-dir", str(tmp_path)]) == 2
    assert (tmp_path / "thesis.txt").exists()
    assert "only wipes its own folders" in capsys.readouterr().err


def test_the_readable_scenario_copy_is_the_one_the_demo_plays() -> None:
    copy = tomllib.loads((ROOT / "config" / "scenarios" / "demo.toml").read_text())
    assert copy == tomllib.loads(shipped("scenario.toml"))
