"""Disputes through the API against a real SQLite store: a vendor disputes, plant IT settles, reports and
credits follow the outcome, the exchange is in the audit log; scoping and hostile input."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.audit import AuditLog
from collector.disputes import (
    DisputeForbidden,
    DisputeNotFound,
    EvidenceFile,
    list_disputes,
    open_dispute,
    settle_dispute,
)
from collector.importer import import_file
from collector.reporting import reports
from collector.service import wall_clock_ms
from collector.store import Store
from linewarden.book import load_book
from linewarden.cli import main
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from tests.integration.review_helpers import Api, imported_config, running_api
from tests.integration.store_params import STORES, open_store_param
from tests.integration.test_collector_cli import HISTORY, ms

PERIOD = "/reports/2026-09"
PLC = {"contract": "plc-support"}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return imported_config(tmp_path)


async def _report(api: Api) -> dict[str, Any]:
    found = await api.http.get(PERIOD, params=PLC, headers=api.plant)
    assert found.status_code == 200
    [report] = found.json()
    assert isinstance(report, dict)
    return report


def _dispute(field: str, value: object, **extra: object) -> dict[str, object]:
    return {"contract": "plc-support", "field": field, "value": value, "reason": "our logs say otherwise", **extra}


async def test_an_accepted_dispute_changes_the_figures_and_credits(config: Path) -> None:
    async with running_api(config) as api:
        before = await _report(api)
        assert before["credits"]["total"] == "150.00"  # 100.00 uptime band + 50.00 response breach (90 min)
        evidence = {"name": "ack-log.txt", "content_base64": base64.b64encode(b"08:30 acknowledged").decode()}
        opened = await api.http.post(
            "/incidents/inc-1/disputes",
            json=_dispute("acknowledged_at", ms("2026-09-10T08:30:00"), links=["https://vendor.example/t/1"],
                          evidence=[evidence]),
            headers=api.vendor,
        )  # fmt: skip
        assert opened.status_code == 201, opened.text
        d = opened.json()
        assert (d["id"], d["state"], d["disputed_value"]) == ("d-1", "open", ms("2026-09-10T09:31:00"))
        [kept] = d["evidence"]
        path = api.data_dir / "evidence" / kept["sha256"]
        assert path.read_bytes() == b"08:30 acknowledged" and stat.S_IMODE(path.stat().st_mode) == 0o600
        got = await api.http.get(f"/disputes/d-1/evidence/{kept['sha256']}", headers=api.plant)
        assert got.content == b"08:30 acknowledged" and 'filename="ack-log.txt"' in got.headers["content-disposition"]
        assert (await api.http.get(f"/disputes/d-1/evidence/{kept['sha256']}", headers=api.other)).status_code == 403
        assert (await api.http.get("/disputes/d-1/evidence/" + "0" * 64, headers=api.vendor)).status_code == 404

        disputed = await _report(api)
        assert disputed["incidents"][0]["disputed"] == ["d-1"]
        assert [(x["id"], x["state"]) for x in disputed["disputes"]] == [("d-1", "open")]
        assert disputed["credits"]["total"] == "150.00", "an open dispute changes no figure"
        csv_text = (await api.http.get(f"{PERIOD}/incidents.csv", params=PLC, headers=api.plant)).text
        assert csv_text.splitlines()[1].endswith(",d-1")

        assert (await api.http.post("/disputes/d-1/settle", json={"outcome": "accepted", "reason": "x"},
                                    headers=api.vendor)).status_code == 403  # fmt: skip
        settled = await api.http.post(
            "/disputes/d-1/settle", json={"outcome": "accepted", "reason": "the vendor's ticket log agrees"},
            headers=api.plant,
        )
        assert settled.status_code == 200 and settled.json()["settled_value"] == ms("2026-09-10T08:30:00")
        after = await _report(api)
        assert after["incidents"][0]["acknowledged_ms"] == ms("2026-09-10T08:30:00")
        assert after["incidents"][0]["response"]["met"] is True and after["incidents"][0]["disputed"] == []
        assert after["credits"]["total"] == "100.00"
        assert [(x["state"], x["outcome"]) for x in after["disputes"]] == [("settled", "accepted")]
        # as of before the settlement the dispute is still open and the figures the measured ones
        as_of = await api.http.get(PERIOD, params={**PLC, "as_of": str(d["opened_at"])}, headers=api.plant)
        assert as_of.json()[0]["disputes"][0]["state"] == "open" and as_of.json()[0]["credits"]["total"] == "150.00"

        again = await api.http.post("/disputes/d-1/settle", json={"outcome": "rejected", "reason": "no"},
                                    headers=api.plant)  # fmt: skip
        assert again.status_code == 409
        log = AuditLog(api.store)
        entries = [(e.action, e.object) for e in log.entries() if e.action.startswith("dispute.")]
        assert entries == [("dispute.opened", "dispute/d-1"), ("dispute.settled", "dispute/d-1")]
        assert log.verify() is None


async def test_amended_and_rejected_settlements(config: Path) -> None:
    async with running_api(config) as api:
        restored = await api.http.post("/incidents/inc-1/disputes", json=_dispute("restored_at",
                                       "2026-09-10T10:02:00+02:00"), headers=api.vendor)  # fmt: skip
        assert restored.json()["proposed_value"] == ms("2026-09-10T08:02:00")
        severity = await api.http.post("/incidents/inc-1/disputes", json=_dispute("severity", "S3"),
                                       headers=api.vendor)  # fmt: skip
        assert restored.status_code == severity.status_code == 201
        amend = {"outcome": "amended", "reason": "the PLC answered at 08:03", "value": ms("2026-09-10T08:03:00")}
        assert (await api.http.post("/disputes/d-1/settle", json=amend, headers=api.plant)).status_code == 200
        reject = {"outcome": "rejected", "reason": "the line stopped: S1 by the contract"}
        assert (await api.http.post("/disputes/d-2/settle", json=reject, headers=api.plant)).status_code == 200
        report = await _report(api)
        [line] = report["uptime"]
        # 3 min down of 720 h: 99.9930 %, above 99.9: no uptime credit; the response breach stays (S1 kept)
        assert line["down_ms"] == 3 * 60_000 and line["uptime_pct"] == "99.9930"
        assert report["incidents"][0]["severity"] == "S1"
        assert [(c["kind"], c["amount"]) for c in report["credits"]["lines"]] == [("response", "50.0000")]
        assert [(x["id"], x["outcome"]) for x in report["disputes"]] == [("d-1", "amended"), ("d-2", "rejected")]


async def test_vendors_see_and_dispute_only_their_own(config: Path) -> None:
    async with running_api(config) as api:
        other = await api.http.post("/incidents/inc-1/disputes", json=_dispute("severity", "S3"), headers=api.other)
        assert other.status_code == 403
        assert (await api.http.post("/incidents/inc-1/disputes", json=_dispute("severity", "S3"),
                                    headers=api.plant)).status_code == 403  # fmt: skip
        assert (await api.http.post("/incidents/inc-1/disputes", json=_dispute("severity", "S3"),
                                    headers=api.vendor)).status_code == 201  # fmt: skip
        assert [d["id"] for d in (await api.http.get("/disputes", headers=api.vendor)).json()] == ["d-1"]
        assert (await api.http.get("/disputes", headers=api.other)).json() == []
        assert (await api.http.get("/disputes/d-1", headers=api.other)).status_code == 403
        assert (await api.http.get("/disputes/d-1", headers=api.plant)).json()["vendor"] == "integrator"
        assert [d["id"] for d in (await api.http.get("/disputes", params={"state": "open"},
                                                      headers=api.plant)).json()] == ["d-1"]  # fmt: skip
        assert (await api.http.get("/disputes", params={"state": "settled"}, headers=api.plant)).json() == []
        assert (await api.http.get("/disputes")).status_code == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (_dispute("opened_at", 1), 422),
        (_dispute("restored_at", "yesterday"), 422),
        (_dispute("severity", "S1"), 422),  # already S1: nothing to dispute
        (_dispute("severity", "S3", links=["javascript:alert(1)"]), 422),
        (_dispute("severity", "S3", evidence=[{"name": "x", "content_base64": "not base64!"}]), 422),
        (_dispute("severity", "S3", evidence=[{"name": "big", "content_base64": base64.b64encode(
            b"x" * (5 * 1024 * 1024 + 1)).decode()}]), 422),
        (_dispute("severity", "S3", reason=""), 422),
        (_dispute("severity", "S3", reason="a\x00b"), 422),
        (_dispute("cause", "a\x00b"), 422),
        (_dispute("severity", "S3", links=["https://x.example/\x00"]), 422),
        ({**_dispute("severity", "S3"), "contract": "nope"}, 404),
        ({"field": "severity"}, 422),
    ],
)  # fmt: skip
async def test_bad_disputes_are_refused(config: Path, body: dict[str, object], status: int) -> None:
    async with running_api(config) as api:
        found = await api.http.post("/incidents/inc-1/disputes", json=body, headers=api.vendor)
        assert found.status_code == status, found.text
        assert (await api.http.get("/disputes", headers=api.plant)).json() == []
        assert not (api.data_dir / "evidence").exists() or not any((api.data_dir / "evidence").iterdir())


async def test_unknown_incidents_and_repeated_disputes(config: Path) -> None:
    async with running_api(config) as api:
        assert (await api.http.post("/incidents/nope/disputes", json=_dispute("severity", "S3"),
                                    headers=api.vendor)).status_code == 404  # fmt: skip
        first = await api.http.post("/incidents/inc-1/disputes", json=_dispute("severity", "S3"), headers=api.vendor)
        second = await api.http.post("/incidents/inc-1/disputes", json=_dispute("severity", "S2"), headers=api.vendor)
        assert (first.status_code, second.status_code) == (201, 409)
        assert (await api.http.post("/disputes/d-9/settle", json={"outcome": "accepted", "reason": "x"},
                                    headers=api.plant)).status_code == 404  # fmt: skip
        bad = {"outcome": "amended", "reason": "x", "value": "S9"}
        assert (await api.http.post("/disputes/d-1/settle", json=bad, headers=api.plant)).status_code == 422
        assert (await api.http.get("/disputes/d-1", headers=api.plant)).json()["state"] == "open"


async def test_plant_it_settles_from_the_cli(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with running_api(config) as api:
        for field, value in (("restored_at", ms("2026-09-10T10:00:00")), ("cause", "the plant's switch failed")):
            found = await api.http.post("/incidents/inc-1/disputes", json=_dispute(field, value), headers=api.vendor)
            assert found.status_code == 201
    cli = ["collector", "dispute", "--config", str(config)]
    capsys.readouterr()
    assert main([*cli, "list", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(d["id"], d["field"], d["state"], d["proposed_value"]) for d in listed] == [
        ("d-1", "restored_at", "open", "2026-09-10T10:00:00Z"), ("d-2", "cause", "open", "the plant's switch failed")
    ]
    assert main([*cli, "show", "d-1"]) == 0
    assert json.loads(capsys.readouterr().out)["reason"] == "our logs say otherwise"
    settle = [*cli, "settle", "d-1", "--outcome", "amended", "--reason", "the HMI log says 10:30"]
    assert main([*settle, "--value", "2026-09-10T10:30"]) == 2, "a time without its zone is refused"
    assert main([*settle, "--value", "2026-09-10T10:30:00Z"]) == 0
    assert "amended: restored_at of inc-1 is 2026-09-10T10:30:00Z" in capsys.readouterr().out
    assert main([*settle, "--value", "2026-09-10T10:30:00Z"]) == 1  # settled already
    assert main([*cli, "settle", "d-2", "--outcome", "rejected", "--reason", "our switch was up"]) == 0
    assert main([*cli, "show", "d-9"]) == 1
    capsys.readouterr()
    assert main([*cli, "list", "--state", "open", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    args = ["collector", "report", "--config", str(config), "--period", "2026-09", "--contract", "plc-support"]
    assert main([*args, "--format", "json"]) == 0
    [report] = json.loads(capsys.readouterr().out)
    assert report["uptime"][0]["down_ms"] == 150 * 60_000  # 08:00 → 10:30
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "-- disputes" in table and "amended" in table and "rejected" in table


@pytest.fixture(params=STORES)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Both stores run the same rules (the SQL is written once)."""
    yield from open_store_param(request, tmp_path)


def test_the_dispute_workflow_on_each_store(any_store: Store, config: Path, tmp_path: Path) -> None:
    cfg = load(CollectorConfig, config)
    book = load_book(cfg, config)
    history = tmp_path / "again.jsonl"
    history.write_text("\n".join(HISTORY) + "\n")
    assert not import_file(any_store, history, wall_clock_ms(), book).bad
    opened = open_dispute(any_store, book, tmp_path / "ev", "plc-support", "inc-1", "integrator", "excluded", True,
                          "the plant's network was down", ["https://x.example/a"],
                          [EvidenceFile("../../etc/passwd", b"trace")], "vendor:integrator", "here", wall_clock_ms())
    assert opened.evidence[0].name == ".._.._etc_passwd"  # a name, never a path
    assert [d.id for d in list_disputes(any_store, vendor="integrator", state="open")] == ["d-1"]
    assert list_disputes(any_store, vendor="scada") == []
    settle_dispute(any_store, "d-1", "accepted", "confirmed by the network team", None, "plant", "here",
                   wall_clock_ms())  # fmt: skip
    [report] = reports(any_store, book, "2026-09", "plc-support", now_ms=wall_clock_ms())
    assert report.incidents == () and report.credits.total == 0  # excluded: no incident, no downtime
    assert [e.windows for e in report.exclusions] == [("dispute:d-1",)]
    assert [(d.id, d.outcome) for d in report.disputes] == [("d-1", "accepted")]
    with pytest.raises(DisputeForbidden):
        open_dispute(any_store, book, tmp_path / "ev", "plc-support", "inc-1", "scada", "severity", "S3", "x", [], [],
                     "vendor:scada", "here", wall_clock_ms())  # fmt: skip
    assert AuditLog(any_store).verify() is None
    assert list_disputes(any_store, incident_id="inc-1\x00") == []
    with pytest.raises(DisputeNotFound):
        open_dispute(any_store, book, tmp_path / "ev", "plc-support", "inc\x00", "integrator", "severity", "S3", "x",
                     [], [], "vendor:integrator", "here", wall_clock_ms())  # fmt: skip
