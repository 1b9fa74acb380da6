"""Maintenance notice cannot be granted after the fact: the collector stamps an announcement when it gets
it, back-dating needs an admin and a reason (or comes from an import) and shows in the report; windows
select a whole site, a line or an asset class; a window that covers nothing is refused. CLI, API and
import, against a real SQLite store and a real API server."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector.api.app import create_app
from collector.api.server import ApiServer
from collector.audit import AuditLog
from collector.maintenance import SiteAsset
from collector.store.rows import MaintenanceWindowRow
from collector.store.sqlite import SqliteStore
from collector.ticketing.lifecycle import Lifecycle
from collector.ticketing.router import decide
from collector.tokens import create_token
from linewarden.cli import main
from linewarden.wire import MaintenanceAnnouncement, decode
from tests.integration.test_collector_cli import HISTORY as CLI_HISTORY
from tests.integration.test_collector_cli import ms
from tests.integration.ticketing_helpers import book, contract

DAY = 86_400_000


CONTRACT = """
[contract]
id = "plc-support"
vendor = "integrator"
document_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
currency = "EUR"
fee_per_period = 1000.00
timezone = "UTC"

[scope]
assets = ["line3-plc"]

[support]
tier = "standard"
[support.targets]
S1 = { response = "1h", resolution = "4h" }

[[uptime]]
scope = "line3-plc"
target_pct = 99.9
"""


# line3-plc (critical, watched by agent a1 at site p1) is DOWN 2026-09-10 08:00–11:00: the CLI tests' history
# up to the PLC's recovery, without its resolution and ticket records.
HISTORY: list[dict[str, Any]] = [json.loads(line) for line in CLI_HISTORY[:4]]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "plc.toml").write_text(CONTRACT)
    path = tmp_path / "collector.toml"
    path.write_text(f'[collector]\ndata_dir = "{tmp_path / "data"}"\ntimezone = "UTC"\n')
    return path


def _import(config: Path, records: list[dict[str, Any]]) -> int:
    f = config.parent / f"history-{time.monotonic_ns()}.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in records))
    return main(["collector", "import", "--config", str(config), str(f)])


def _add(config: Path, *extra: str) -> int:
    return main(["collector", "maintenance", "--config", str(config), "add", "--site", "p1", "--by", "integrator",
                 "--start", "2026-09-10T07:00", "--end", "2026-09-10T12:00", "--no-publish", *extra])  # fmt: skip


def _report(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["collector", "report", "--config", str(config), "--period", "2026-09", "--format", "json"]) == 0
    [report] = json.loads(capsys.readouterr().out)
    return report  # type: ignore[no-any-return]


def _store(config: Path) -> SqliteStore:
    return SqliteStore(config.parent / "data" / "collector.db")


def test_a_back_dated_announcement_needs_an_admin_and_a_reason_and_is_flagged(config, capsys):
    assert _import(config, HISTORY) == 0
    notice = ["--asset", "line3-plc", "--announced-at", "2026-09-01T09:00", "--id", "mw-late"]
    assert _add(config, *notice) == 2
    assert "only an admin" in capsys.readouterr().err
    assert _add(config, *notice, "--admin") == 2
    assert "needs a stated reason" in capsys.readouterr().err
    future = datetime.fromtimestamp(time.time() + 3600, UTC).strftime("%Y-%m-%dT%H:%M")
    assert _add(config, "--asset", "line3-plc", "--announced-at", future, "--admin", "--backdate-reason", "x") == 2
    assert "cannot be dated after" in capsys.readouterr().err
    assert _report(config, capsys)["exclusions"] == []  # nothing recorded by the refused attempts

    assert _add(config, *notice, "--admin", "--backdate-reason", "mail of 1 Sep found late") == 0
    assert "(back-dated)" in capsys.readouterr().out
    report = _report(config, capsys)
    [excluded] = report["exclusions"]
    assert excluded["windows"] == ["mw-late"] and excluded["back_dated"] == ["mw-late"]
    assert report["uptime"][0]["down_ms"] == 0  # the window was announced in time, on the admin's word
    assert main(["collector", "report", "--config", str(config), "--period", "2026-09", "--format", "table"]) == 0
    assert "mw-late (back-dated)" in capsys.readouterr().out
    store = _store(config)
    try:
        [entry] = [e for e in AuditLog(store).entries() if e.action == "maintenance.backdated"]
        assert entry.details["reason"] == "mail of 1 Sep found late"
        assert entry.details["announced_at"] == ms("2026-09-01T09:00")
    finally:
        store.close()


def test_without_a_time_the_announcement_is_stamped_now_and_gives_no_notice_after_the_fact(config, capsys):
    assert _import(config, HISTORY) == 0
    assert _add(config, "--asset", "line3-plc", "--id", "mw-now") == 0
    report = _report(config, capsys)
    assert report["exclusions"] == [] and [s["window"] for s in report["short_notice"]] == ["mw-now"]
    assert report["short_notice"][0]["back_dated"] is False


@pytest.mark.parametrize(
    ("selector", "window"),
    [(["--whole-site"], "mw-site"), (["--line", "a1"], "mw-line"), (["--asset-class", "critical"], "mw-class")],
)
def test_a_window_can_select_a_site_a_line_or_an_asset_class(config, capsys, selector, window):
    assert _import(config, HISTORY) == 0
    assert _add(config, *selector, "--id", window, "--announced-at", "2026-09-01T09:00", "--admin",
                "--backdate-reason", "history") == 0  # fmt: skip
    [excluded] = _report(config, capsys)["exclusions"]
    assert excluded["windows"] == [window] and excluded["ms"] == 5 * 3_600_000


@pytest.mark.parametrize(
    ("selector", "why"),
    [
        (["--asset", "ghost-plc"], "asset ghost-plc"),
        (["--service", "no-such-service"], "service no-such-service"),
        (["--line", "nobody"], "line nobody"),
        (["--asset-class", "low"], "asset class low"),
        (["--whole-site", "--site", "p9"], "site p9"),
    ],
)
def test_a_window_that_covers_nothing_is_refused_with_a_message(config, capsys, selector, why):
    assert _import(config, HISTORY) == 0
    assert _add(config, *selector) == 2
    err = capsys.readouterr().err
    assert "covers nothing" in err and why in err
    store = _store(config)
    try:
        assert store.table_rows("maintenance_windows") == []
    finally:
        store.close()


def test_an_import_refuses_a_window_that_covers_nothing_and_flags_back_dated_ones(config, capsys):
    good = {"record": "maintenance_window", "site": "p1", "id": "mw-imp", "start": ms("2026-09-10T07:00"),
            "end": ms("2026-09-10T12:00"), "lines": ["a1"], "announced_at": ms("2026-09-01T09:00"),
            "announced_by": "old tool"}  # fmt: skip
    empty = dict(good, id="mw-empty", lines=[], assets=["ghost-plc"])
    # The window comes first in the file: it may select assets the same file brings.
    assert _import(config, [good, empty, *HISTORY]) == 1
    err = capsys.readouterr().err
    assert ":2: skipped: maintenance_window mw-empty: the window covers nothing: asset ghost-plc" in err
    report = _report(config, capsys)
    [excluded] = report["exclusions"]
    assert excluded["windows"] == ["mw-imp"] and excluded["back_dated"] == ["mw-imp"]
    store = _store(config)
    try:
        assert [e.details["reason"] for e in AuditLog(store).entries() if e.action == "maintenance.backdated"] == [
            "imported history"
        ]
    finally:
        store.close()


def test_an_import_refuses_a_window_announced_after_the_import(config, capsys):
    later = {"record": "maintenance_window", "site": "p1", "id": "mw-future", "start": ms("2026-09-10T07:00"),
             "end": ms("2026-09-10T12:00"), "assets": ["line3-plc"], "announced_by": "old tool",
             "announced_at": int(time.time() * 1000) + 7 * DAY}  # fmt: skip
    assert _import(config, [*HISTORY, later]) == 1
    assert ":5: skipped: maintenance_window mw-future: an announcement cannot be dated after" in capsys.readouterr().err
    assert _report(config, capsys)["short_notice"] == []


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, dict[str, str]]]]:
    store = SqliteStore(tmp_path / "collector.db")
    store.migrate()
    the_book = book(contract("plc-support", "integrator", ["line3-plc"], None))
    app = create_app(store, Lifecycle(store, the_book, lambda: int(time.time() * 1000), "here"),
                     lambda: int(time.time() * 1000), tmp_path / "rca")  # fmt: skip
    server = ApiServer(app, "127.0.0.1", 0)
    port = await server.start()
    now = int(time.time() * 1000)
    tokens = {role: create_token(store, role, None, role, now, "test", "here")[0] for role in ("plant", "admin")}
    headers = {role: {"Authorization": f"Bearer {t}"} for role, t in tokens.items()}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            yield http, headers
    finally:
        await server.stop()
        store.close()


async def test_the_api_stamps_announcements_and_lets_only_an_admin_back_date(api):
    http, as_ = api
    now = int(time.time() * 1000)
    window = {"site": "p1", "start": now + 5 * DAY, "end": now + 5 * DAY + 3_600_000, "assets": ["line3-plc"]}
    early = dict(window, announced_at=now - 10 * DAY)
    refused = await http.post("/maintenance-windows", json=early, headers=as_["plant"])
    assert refused.status_code == 403 and "only an admin" in refused.json()["detail"]
    assert (await http.post("/maintenance-windows", json=early, headers=as_["admin"])).status_code == 422
    later = dict(window, announced_at=now + DAY)
    assert (await http.post("/maintenance-windows", json=later, headers=as_["admin"])).status_code == 422
    nothing = dict(window, assets=["ghost-plc"])
    empty = await http.post("/maintenance-windows", json=nothing, headers=as_["plant"])
    assert empty.status_code == 422 and "covers nothing" in empty.json()["detail"]

    stamped = await http.post("/maintenance-windows", json=window, headers=as_["plant"])
    assert stamped.status_code == 201 and stamped.json()["announced_at"] >= now
    assert stamped.json()["back_dated"] is False
    made = await http.post("/maintenance-windows", json=dict(early, backdate_reason="phoned in on the 1st"),
                           headers=as_["admin"])  # fmt: skip
    assert made.status_code == 201 and made.json()["announced_at"] == now - 10 * DAY
    listed = {w["id"]: w for w in (await http.get("/maintenance-windows", headers=as_["plant"])).json()}
    assert listed[made.json()["id"]]["back_dated"] is True
    assert listed[made.json()["id"]]["backdate_reason"] == "phoned in on the 1st"
    assert listed[stamped.json()["id"]]["back_dated"] is False


def test_the_maintenance_topic_stays_compatible_and_carries_the_new_fields():
    old = b'{"v":1,"site":"p1","ts":1,"windows":[{"id":"w","start":2,"end":3,"assets":["a"],' \
          b'"announced_at":1,"announced_by":"x"}]}'  # fmt: skip
    [w] = decode(MaintenanceAnnouncement, old).windows
    assert (w.whole_site, w.lines, w.asset_classes, w.back_dated) == (False, [], [], False)
    new = old.replace(b'"assets":["a"]', b'"lines":["a1"],"asset_classes":["critical"],"back_dated":true')
    [w] = decode(MaintenanceAnnouncement, new).windows
    assert (w.lines, w.asset_classes, w.back_dated) == (["a1"], ["critical"], True)


def test_an_incident_inside_a_timely_whole_site_window_raises_no_ticket():
    window = MaintenanceWindowRow("mw-site", "p1", "maintenance", 10 * DAY, 11 * DAY, (), (), 0, "plant-it", "",
                                  None, whole_site=True)  # fmt: skip
    the_book = book(contract("plc-support", "integrator", ["line3-plc"], None))
    known = [SiteAsset("p1", "a1", "line3-plc", "critical")]
    inside = decide("target", "p1", "line3-plc", 10 * DAY + 1, the_book, [window], known)
    assert [(r.decision, r.reason) for r in inside] == [("maintenance", "inside approved maintenance window mw-site")]
    elsewhere = decide("target", "p2", "line3-plc", 10 * DAY + 1, the_book, [window], known)
    assert [r.decision for r in elsewhere] == ["vendor"]


def test_a_window_that_covers_something_is_recorded_with_a_warning_for_names_that_match_nothing(config, capsys):
    assert _import(config, HISTORY) == 0
    assert _add(config, "--asset", "line3-plc", "--asset", "line3-plx", "--id", "mw-typo") == 0
    assert "warning: asset line3-plx (not in p1's registry nor in any contract): covers nothing" in (
        capsys.readouterr().err
    )
