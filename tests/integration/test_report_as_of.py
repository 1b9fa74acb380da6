"""Reports of a period that is not over: `collector report --as-of` and the API's `as_of`, with figures
checked by hand against the history of test_collector_cli (one S1 outage on 10 September 2026, UTC)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from collector.api.app import create_app
from collector.api.server import ApiServer
from collector.audit import AuditLog
from collector.service import wall_clock_ms
from collector.store import open_store
from collector.ticketing.lifecycle import Lifecycle
from collector.tokens import create_token
from linewarden.book import load_book
from linewarden.cli import main
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from tests.integration.review_helpers import imported_config
from tests.integration.test_collector_cli import ms

AS_OF = "2026-09-10T09:00:00Z"  # the PLC has been down for 1 h; the ticket was raised at 08:01, not acknowledged


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    return imported_config(tmp_path)


def _report(config: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    capsys.readouterr()
    args = ["collector", "report", "--config", str(config), "--contract", "plc-support", *extra]
    assert main(args) == 0
    return capsys.readouterr().out


def test_report_as_of_counts_nothing_later(imported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _report(imported, capsys, "--period", "2026-09", "--as-of", AS_OF, "--format", "json")
    [report] = json.loads(out)
    assert report["partial"] is True and report["as_of_ms"] == ms("2026-09-10T09:00:00")
    [line] = report["uptime"]
    # 1 Sep 00:00 → 10 Sep 09:00 = 225 h covered, DOWN 08:00–09:00 = 1 h: 224 / 225 = 99.5555…% (truncated)
    assert line["covered_ms"] == 225 * 3_600_000 and line["down_ms"] == 3_600_000
    assert line["uptime_pct"] == "99.5555" and line["observed_pct"] == "100.00"
    [incident] = report["incidents"]
    # raised 08:01; the 09:31 acknowledgement and the 11:00 restoration are later than as_of
    assert incident["acknowledged_ms"] is None and incident["restored_ms"] is None
    assert incident["response"] == {"elapsed_ms": 59 * 60_000, "target_ms": 3_600_000, "stopped": False,
                                    "met": None, "left_ms": 60_000}  # fmt: skip
    assert incident["resolution"]["met"] is None and incident["resolution"]["left_ms"] == 181 * 60_000
    # only the uptime band (10 % of 1 000.00); the response breach of the whole month (90 min) is not known yet
    assert [c["kind"] for c in report["credits"]["lines"]] == ["uptime"] and report["credits"]["total"] == "100.00"

    table = _report(imported, capsys, "--period", "2026-09", "--as-of", AS_OF)
    assert "partial period, as of 2026-09-10T09:00:00+00:00 UTC" in table and "running, 1m 0s left" in table
    csv = _report(imported, capsys, "--period", "2026-09", "--as-of", "2026-09-10T11:00:00+02:00", "--format", "csv")
    assert "# period" in csv and ',yes,"partial period, as of 2026-09-10T09:00:00+00:00 UTC"' in csv

    assert _credit_entries(imported) == [], "provisional credits are not audit-logged"
    whole = json.loads(_report(imported, capsys, "--period", "2026-09", "--format", "json"))[0]
    assert whole["partial"] is False and whole["incidents"][0]["response"]["met"] is False
    assert _credit_entries(imported) == ["150.00"]


def _credit_entries(config: Path) -> list[object]:
    store = open_store(load(CollectorConfig, config))
    try:
        return [e.details["total"] for e in AuditLog(store).entries() if e.action == "credits.reported"]
    finally:
        store.close()


def test_report_of_the_current_month_is_as_of_now(imported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = wall_clock_ms()
    month = datetime.fromtimestamp(before / 1000, UTC).strftime("%Y-%m")
    [report] = json.loads(_report(imported, capsys, "--period", month, "--format", "json"))
    assert report["partial"] is True and before <= report["as_of_ms"] <= wall_clock_ms()
    [line] = report["uptime"]  # covered up to now, not to the month's end
    assert line["covered_ms"] == report["as_of_ms"] - report["period"]["start_ms"]


@pytest.mark.parametrize("bad", ["2026-09-10T09:00", "yesterday", "2999-01-01T00:00Z"])
def test_report_as_of_needs_a_time_with_its_zone(
    imported: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    args = ["collector", "report", "--config", str(imported), "--period", "2026-09", "--as-of", bad]
    assert main(args) == 2
    assert "--as-of" in capsys.readouterr().err


async def test_api_report_as_of(imported: Path, tmp_path: Path) -> None:
    config = load(CollectorConfig, imported)
    book = load_book(config, imported)
    store = open_store(config)
    lifecycle = Lifecycle(store, book, wall_clock_ms, "test")
    server = ApiServer(create_app(store, lifecycle, wall_clock_ms, tmp_path / "rca", book=book), "127.0.0.1", 0)
    port = await server.start()
    try:
        vendor, _ = create_token(store, "vendor", "integrator", "integrator", wall_clock_ms(), "test", "here")
        plant, _ = create_token(store, "plant", None, "plant-it", wall_clock_ms(), "test", "here")
        as_vendor, as_plant = ({"Authorization": f"Bearer {t}"} for t in (vendor, plant))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            found = await http.get("/reports/2026-09", params={"as_of": AS_OF}, headers=as_vendor)
            assert found.status_code == 200
            [report] = found.json()  # the vendor sees its own contract only
            assert report["contract_id"] == "plc-support" and report["partial"] is True
            assert report["incidents"][0]["response"]["left_ms"] == 60_000
            by_ms = await http.get("/reports/2026-09", params={"as_of": str(ms("2026-09-10T09:00:00"))},
                                   headers=as_plant)  # fmt: skip
            assert [r["contract_id"] for r in by_ms.json()] == ["plc-support", "scada-support"]
            assert by_ms.json()[0]["uptime"] == report["uptime"]
            whole = (await http.get("/reports/2026-09", headers=as_plant)).json()
            assert whole[0]["partial"] is False
            other = await http.get("/reports/2026-09", params={"contract": "scada-support"}, headers=as_vendor)
            assert other.status_code == 403
            for params in ({"as_of": "2026-09-10T09:00"}, {"as_of": "soon"}, {"as_of": "9" * 40}):
                assert (await http.get("/reports/2026-09", params=params, headers=as_plant)).status_code == 422
            assert (await http.get("/reports/2026-13", headers=as_plant)).status_code == 422
            assert (await http.get("/reports/2026-09", params={"contract": "x"}, headers=as_plant)).status_code == 404
            assert (await http.get("/reports/2026-09")).status_code == 401
    finally:
        await server.stop()
        store.close()
