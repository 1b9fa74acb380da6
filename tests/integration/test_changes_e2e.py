"""Patch policy end to end: a Modbus gateway's PLCs (staging unit 2, production unit 1, their version as register
text) -> agent -> broker -> collector -> report, with the change window recorded, approved and revoked over the
API."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from collector.change_records import latest_versions
from collector.reporting import patch_rows, reports, scorecard_row
from collector.service import CollectorService, wall_clock_ms
from collector.store.sqlite import SqliteStore
from collector.tokens import create_token
from linewarden.config.collector import ConsoleConfig
from simulators.broker import Mosquitto
from simulators.modbus_plc import ModbusPlc
from tests.integration.agent_helpers import running_agent
from tests.integration.ticketing_helpers import book, collector_config, contract
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker

SITE = "plant-chg"
PROD, STAGING = "line9-plc", "line9-plc-test"
H = 3_600_000


def _agent_toml(data: Path, port: int, plc: ModbusPlc) -> str:
    targets = "".join(
        f"""
[[assets]]
id = "{asset}"
criticality = "high"

[[targets]]
id = "{asset}-mb"
type = "modbus"
asset = "{asset}"
host = "127.0.0.1"
port = {plc.port}
unit = {unit}
report_versions = true
version_interval = "100ms"
points = [{{ name = "heartbeat", address = 0 }}]
version_registers = [{{ what = "software_version", address = 90, count = 8 }}]
"""
        for asset, unit in ((PROD, 1), (STAGING, 2))
    )
    return f"""
[agent]
id = "chg-agent"
site = "{SITE}"
data_dir = "{data}"
heartbeat_interval = "1s"

[broker]
host = "127.0.0.1"
port = {port}

[defaults]
interval = "200ms"
timeout = "1s"
{targets}"""


def _version(store: SqliteStore, asset: str) -> str | None:
    return next((v.version for v in latest_versions(store, asset) if v.what == "software_version"), None)


async def test_untested_patch_approved_window_and_unapproved_rollback(mosquitto: Mosquitto, tmp_path: Path) -> None:
    the_book = book(contract("plc-2026", "acme", [PROD, STAGING], None,
                             change_policy={"min_staging": "7d", "staging": [{"staging": STAGING,
                                                                              "production": [PROD]}]}))  # fmt: skip
    store = SqliteStore(tmp_path / "collector.db")
    store.migrate()
    config = collector_config(mosquitto.host, mosquitto.port, tmp_path / "c", "c-chg")
    config = config.model_copy(update={"console": ConsoleConfig(enabled=False)})
    svc = CollectorService(config, store, book=the_book, serve_api=True)
    token, _ = create_token(store, "plant", None, "plant it", wall_clock_ms(), "test", "test")
    await svc.start()
    try:
        async with ModbusPlc("gateway") as plc:
            await plc.set_version_text("1.0.0")
            async with (
                running_agent(tmp_path, _agent_toml(tmp_path / "a", mosquitto.port, plc)),
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.api_port}",
                                  headers={"Authorization": f"Bearer {token}"}) as api,  # fmt: skip
            ):
                await async_wait_until(lambda: _version(store, PROD) == _version(store, STAGING) == "1.0.0", 20,
                                       what="baseline versions recorded")  # fmt: skip
                now = wall_clock_ms()
                made = await api.post("/maintenance-windows", json={
                    "site": SITE, "kind": "change", "start": now - H, "end": now + H, "assets": [PROD]})  # fmt: skip
                assert made.status_code == 201, made.text
                window = made.json()["id"]
                ref = {"change_ref": "CAB-2026-7"}
                approved = await api.post(f"/maintenance-windows/{window}/approval", json=ref)
                assert approved.status_code == 201, approved.text
                assert (await api.post(f"/maintenance-windows/{window}/approval", json=ref)).status_code == 409

                await plc.set_version_text("2.0.0", unit=1)  # never ran on staging
                await async_wait_until(lambda: _version(store, PROD) == "2.0.0", 20, what="the patch observed")
                assert (await api.delete(f"/maintenance-windows/{window}/approval")).status_code == 200
                await plc.set_version_text("1.0.0", unit=1)  # back, with the window no longer approved
                await async_wait_until(lambda: _version(store, PROD) == "1.0.0", 20, what="the rollback observed")
    finally:
        await svc.stop()
    month = datetime.now(ZoneInfo("Europe/Berlin")).strftime("%Y-%m")
    [report] = reports(store, the_book, month, now_ms=wall_clock_ms())
    store.close()
    patch, rollback = (c for c in report.patch_changes if c.what == "software_version")
    assert (patch.old, patch.new, patch.findings, patch.window, patch.change_ref) == (
        "1.0.0", "2.0.0", ("untested_patch",), window, "CAB-2026-7")
    assert (patch.staging_asset, patch.staged_ms, patch.rollback) == (STAGING, 0, False)
    assert (rollback.new, rollback.rollback, rollback.findings, rollback.window) == (
        "1.0.0", True, ("unapproved_change",), None)
    row = scorecard_row(report)
    assert (row["untested_patches"], row["unapproved_version_changes"], row["rollbacks"]) == (1, 1, 1)
    shown = [r["finding"] for r in patch_rows(report, str) if r["what"] == "software_version"]
    assert shown == ["untested patch", "unapproved change"]
