"""`linewarden collector report|contract|maintenance` as a user runs them, with figures checked by hand."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from linewarden.cli import main
from linewarden.config.base import BrokerConfig
from linewarden.mqtt import MqttClient
from linewarden.wire import MaintenanceAnnouncement, decode, maintenance_topic
from simulators.broker import Mosquitto
from tests.waiting import async_wait_until

PDF = b"%PDF-1.4 signed support contract, page 1 of 1"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


CONTRACT = f"""
[contract]
id = "plc-support"
vendor = "integrator"
document_sha256 = "{hashlib.sha256(PDF).hexdigest()}"
currency = "EUR"
fee_per_period = 1000.00
timezone = "UTC"

[scope]
assets = ["line3-plc"]

[support]
tier = "standard"
coverage = "24x7"
[support.targets]
S1 = {{ response = "1h", resolution = "4h" }}

[[uptime]]
scope = "line3-plc"
target_pct = 99.9

[credits]
cap_fee_pct = 30
[[credits.uptime]]
below_pct = 99.9
fee_pct = 10
[credits.breach]
S1 = {{ response_amount = 50.00 }}
"""


def _event(seq: int, at: str, type_: str, body: dict[str, object]) -> str:
    return json.dumps({"site": "p1", "agent": "a1", "seq": seq, "ts": ms(at), "type": type_, "body": body})


HISTORY = [
    _event(1, "2026-09-01T00:00:00", "state_change",
           {"target": "plc", "asset": "line3-plc", "from": "UNKNOWN", "to": "UP", "reason": "ok",
            "at": ms("2026-09-01T00:00:00")}),
    _event(2, "2026-09-10T08:00:00", "state_change",
           {"target": "plc", "asset": "line3-plc", "from": "UP", "to": "DOWN", "reason": "connection refused",
            "at": ms("2026-09-10T08:00:00")}),
    _event(3, "2026-09-10T08:00:00", "incident_opened",
           {"incident": "inc-1", "target": "plc", "asset": "line3-plc", "criticality": "critical", "severity": "S1",
            "state": "DOWN", "reason": "connection refused", "in_production": True,
            "opened_at": ms("2026-09-10T08:00:00")}),
    _event(4, "2026-09-10T11:00:00", "state_change",
           {"target": "plc", "asset": "line3-plc", "from": "DOWN", "to": "UP", "reason": "ok",
            "at": ms("2026-09-10T11:00:00")}),
    _event(5, "2026-09-10T11:00:00", "incident_resolved", {"incident": "inc-1", "at": ms("2026-09-10T11:00:00")}),
    json.dumps({"record": "ticket_raised", "incident": "inc-1", "at": ms("2026-09-10T08:01:00"), "actor": "lw"}),
    json.dumps({"record": "ticket_acknowledged", "incident": "inc-1", "at": ms("2026-09-10T09:31:00"),
                "actor": "integrator"}),
]  # fmt: skip


@pytest.fixture
def collector_config(tmp_path: Path, mosquitto: Mosquitto) -> Path:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "plc.toml").write_text(CONTRACT)
    config = tmp_path / "collector.toml"
    config.write_text(
        f'[collector]\ndata_dir = "{tmp_path / "data"}"\ntimezone = "UTC"\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
    )
    return config


def test_report_figures_match_the_hand_arithmetic(
    tmp_path: Path, collector_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = tmp_path / "history.jsonl"
    history.write_text("\n".join(HISTORY) + "\n")
    assert main(["collector", "import", "--config", str(collector_config), str(history)]) == 0
    capsys.readouterr()
    assert main(["collector", "report", "--config", str(collector_config), "--period", "2026-09",
                 "--format", "json"]) == 0  # fmt: skip
    [report] = json.loads(capsys.readouterr().out)
    [line] = report["uptime"]
    # September: 30 × 24 h = 720 h covered; DOWN 08:00–11:00 = 3 h; (720 − 3) / 720 = 99.583333…%
    assert line["covered_ms"] == 720 * 3_600_000
    assert line["down_ms"] == 3 * 3_600_000
    assert line["uptime_pct"] == "99.5833" and line["met"] is False
    [incident] = report["incidents"]
    # notified 08:01, acknowledged 09:31: 90 min against 1 h; restored 11:00: 2 h 59 min against 4 h
    assert incident["response"]["elapsed_ms"] == 90 * 60_000 and incident["response"]["met"] is False
    assert incident["resolution"]["elapsed_ms"] == 179 * 60_000 and incident["resolution"]["met"] is True
    # 10 % of 1 000.00 for the uptime line + 50.00 for the S1 response breach; the cap (300.00) is not reached
    assert report["credits"]["total"] == "150.00" and report["credits"]["capped"] is False

    for fmt, needle in (("table", "99.5833"), ("csv", "# credits")):
        assert main(["collector", "report", "--config", str(collector_config), "--period", "2026-09",
                     "--format", fmt]) == 0  # fmt: skip
        assert needle in capsys.readouterr().out


def test_report_rejects_a_bad_period(collector_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collector", "report", "--config", str(collector_config), "--period", "2026-13"]) == 2
    assert "YYYY-MM" in capsys.readouterr().err


@pytest.mark.parametrize("period", ["0001-01", "1969-12", "9999-12"])
def test_report_of_a_month_outside_the_wire_range_is_one_line(
    collector_config: Path, capsys: pytest.CaptureFixture[str], period: str
) -> None:
    assert main(["collector", "report", "--config", str(collector_config), "--period", period]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "from 1970-01 to 9998-12" in err, err


def test_contract_verify(tmp_path: Path, collector_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signed = tmp_path / "signed.pdf"
    signed.write_bytes(PDF)
    assert main(["collector", "contract", "--config", str(collector_config), "verify", "plc-support",
                 str(signed)]) == 0  # fmt: skip
    assert "ok:" in capsys.readouterr().out
    signed.write_bytes(PDF + b" amended")
    assert main(["collector", "contract", "--config", str(collector_config), "verify", "plc-support",
                 str(signed)]) == 1  # fmt: skip
    assert "MISMATCH" in capsys.readouterr().out


@pytest.mark.broker
async def test_maintenance_windows_are_recorded_published_and_cancelled(
    mosquitto: Mosquitto, collector_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[MaintenanceAnnouncement] = []
    listener = MqttClient(BrokerConfig(host=mosquitto.host, port=mosquitto.port), client_id="mw-listener")
    listener.subscribe(maintenance_topic("p1"), lambda _t, p: seen.append(decode(MaintenanceAnnouncement, p)))
    await listener.start()
    try:
        await async_wait_until(lambda: listener.connected, 10)
        args = ["collector", "maintenance", "--config", str(collector_config)]
        before = int(time.time() * 1000)
        code = await asyncio.to_thread(
            main,
            [*args, "add", "--site", "p1", "--start", "2030-01-05T06:00", "--end", "2030-01-05T10:00",
             "--asset", "line3-plc", "--by", "integrator: J. Doe", "--id", "mw-1"],
        )  # fmt: skip
        assert code == 0
        await async_wait_until(lambda: seen and seen[-1].windows, 10, what="announcement")
        [window] = seen[-1].windows
        assert (window.id, window.assets, window.announced_by) == ("mw-1", ["line3-plc"], "integrator: J. Doe")
        assert before <= window.announced_at <= int(time.time() * 1000), "stamped when the collector got it"
        assert not window.back_dated

        assert "published 1 window(s)" in capsys.readouterr().out
        assert await asyncio.to_thread(main, [*args, "list", "--format", "json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [w["id"] for w in listed] == ["mw-1"] and listed[0]["back_dated"] == ""

        assert await asyncio.to_thread(main, [*args, "cancel", "mw-1"]) == 0
        await async_wait_until(lambda: not seen[-1].windows, 10, what="cancellation published")
    finally:
        await listener.stop()


def test_contracts_credits_and_windows_land_in_the_audit_log(
    tmp_path: Path, collector_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from collector.audit import AuditLog
    from collector.store.sqlite import SqliteStore

    history = tmp_path / "history.jsonl"
    history.write_text("\n".join(HISTORY) + "\n")
    assert main(["collector", "import", "--config", str(collector_config), str(history)]) == 0
    report = ["collector", "report", "--config", str(collector_config), "--period", "2026-09", "--format", "json"]
    assert main(report) == 0
    assert main(report) == 0, "the same figures again: no new entry"
    amended = CONTRACT.replace("fee_per_period = 1000.00", "fee_per_period = 2000.00")
    (tmp_path / "contracts" / "plc.toml").write_text(amended)
    assert main(report) == 0
    args = ["collector", "maintenance", "--config", str(collector_config)]
    assert main([*args, "add", "--site", "p1", "--start", "2030-01-05T06:00", "--end", "2030-01-05T10:00",
                 "--asset", "line3-plc", "--by", "integrator", "--id", "mw-1", "--no-publish"]) == 0  # fmt: skip
    assert main([*args, "cancel", "mw-1", "--no-publish"]) == 0
    capsys.readouterr()

    store = SqliteStore(tmp_path / "data" / "collector.db")
    try:
        log = AuditLog(store)
        entries = [(e.action, e.object) for e in log.entries()]
        totals = [e.details["total"] for e in log.entries() if e.action == "credits.reported"]
        assert log.verify() is None
    finally:
        store.close()
    sha = hashlib.sha256(history.read_bytes()).hexdigest()
    assert entries == [
        ("import.applied", f"import/{sha}"),
        ("contract.loaded", "contract/plc-support"),
        ("credits.reported", "credits/plc-support/2026-09"),
        ("contract.changed", "contract/plc-support"),
        ("credits.reported", "credits/plc-support/2026-09"),
        ("maintenance.recorded", "window/mw-1"),
        ("maintenance.cancelled", "window/mw-1"),
    ]
    assert totals == ["150.00", "250.00"]  # 10 % of the new fee (200.00) + the 50.00 breach amount


def test_each_contract_sees_only_its_own_ticket(
    tmp_path: Path, collector_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two vendors' contracts cover one asset: each one's response clock runs on its own ticket."""
    other = CONTRACT.replace('id = "plc-support"', 'id = "scada-support"')
    (tmp_path / "contracts" / "other.toml").write_text(other.replace('vendor = "integrator"', 'vendor = "scada"'))
    own = [
        json.dumps({"record": "ticket_raised", "incident": "inc-1", "at": ms("2026-09-10T08:02:00"),
                    "actor": "lw", "details": {"contract": "scada-support"}}),
        json.dumps({"record": "ticket_acknowledged", "incident": "inc-1", "at": ms("2026-09-10T08:12:00"),
                    "actor": "scada", "details": {"contract": "scada-support"}}),
    ]  # fmt: skip
    history = tmp_path / "history.jsonl"
    history.write_text("\n".join(HISTORY + own) + "\n")
    assert main(["collector", "import", "--config", str(collector_config), str(history)]) == 0
    capsys.readouterr()
    assert main(["collector", "report", "--config", str(collector_config), "--period", "2026-09",
                 "--format", "json"]) == 0  # fmt: skip
    by = {r["contract_id"]: r["incidents"][0]["response"] for r in json.loads(capsys.readouterr().out)}
    # plc-support has no ticket records of its own: the records that name no contract (raised 08:01,
    # acknowledged 09:31): 90 min. scada-support has its own ticket: its records only, never mixed with the
    # unnamed ones (raised 08:02, acknowledged 08:12): 10 min.
    assert by["plc-support"]["elapsed_ms"] == 90 * 60_000
    assert by["scada-support"]["elapsed_ms"] == 10 * 60_000


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--start", "0001-01-01T00:00-14:00", "--end", "0001-01-01T01:00-14:00"], "outside 1970 to 9999"),
        (["--start", "9999-12-31T20:00+00:00", "--end", "9999-12-31T23:00-14:00"], "outside 1970 to 9999"),
        (["--start", "2030-01-05T06:00", "--end", "2030-01-05T10:00", "--asset", "Line 3"],
         "an id ^[a-z0-9][a-z0-9_-]*$ - at `$.assets[0]`"),
    ],
    ids=["before-1970", "after-9999", "bad-asset-id"],
)
def test_a_maintenance_window_the_wire_cannot_carry_is_one_line_and_exit_2(
    collector_config: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    capsys.readouterr()
    args = ["collector", "maintenance", "--config", str(collector_config), "add", "--site", "p1", "--by", "me",
            "--no-publish", *extra]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
