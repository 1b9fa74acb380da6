"""Exports of the monthly report against a real store: the vendor review PDF (rendered to text with
pdftotext and to images with pdftoppm, its figures checked against the JSON report) and one CSV per
table (parsed with the csv module), from the CLI and the API."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from collector.disputes import open_dispute
from collector.exports import TABLES, monthly_review_pdf, trend_months
from collector.exports.pdf import notable, text
from collector.service import wall_clock_ms
from collector.store import open_store
from linewarden.book import load_book
from linewarden.cli import main
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from linewarden.domain import Severity
from linewarden.sla.clocks import Clock
from linewarden.sla.results import IncidentResult
from tests.integration.review_helpers import imported_config, running_api

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils (.ci/run installs it)")

REASON = "Łódź logs: acknowledged by phone ✓ =HYPERLINK(\"x\")"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = imported_config(tmp_path)
    cfg = load(CollectorConfig, path)
    store = open_store(cfg)
    try:
        open_dispute(store, load_book(cfg, path), cfg.collector.data_dir / "evidence", "plc-support", "inc-1",
                     "integrator", "acknowledged_at", 1_789_029_000_000, REASON, [], [], "vendor:integrator", "here",
                     wall_clock_ms())  # fmt: skip
    finally:
        store.close()
    return path


def _json_report(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["collector", "report", "--config", str(config), "--period", "2026-09", "--contract", "plc-support",
                 "--format", "json"]) == 0  # fmt: skip
    [report] = json.loads(capsys.readouterr().out)
    assert isinstance(report, dict)
    return report


def _pdf_text(pdf: Path, mode: str = "-layout") -> str:
    """The text of `pdf`: laid out as on the page, or with "-raw" in the order it was drawn."""
    return subprocess.run(["pdftotext", mode, str(pdf), "-"], check=True, capture_output=True, text=True).stdout


def test_the_review_pdf_holds_the_json_reports_figures(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _json_report(config, capsys)
    out = tmp_path / "review.pdf"
    assert main(["collector", "review", "--config", str(config), "--period", "2026-09", "--contract", "plc-support",
                 "--output", str(out)]) == 0  # fmt: skip
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and b"/Subtype /Image" not in data  # charts are vector graphics
    words = " ".join(_pdf_text(out).split())
    [line] = report["uptime"]
    sc = report["scorecard"]
    assert "Monthly vendor review: integrator, contract plc-support, 2026-09" in words
    assert f"line3-plc 24x7 {line['target_pct']} % {line['uptime_pct']} % {line['observed_pct']} %" in words
    assert (line["uptime_pct"], line["observed_pct"]) == ("99.5833", "100.00")
    # the KPIs: MTTA 08:01 → 09:31, MTTR 08:01 → 11:00 (restored), score, credits
    assert (sc["mtta_ms"], sc["mttr_ms"]) == (90 * 60_000, 179 * 60_000)
    assert "MTTA MTTR" in words and "1h 30m 2h 59m" in words and f"{sc['score']} / 100" in words
    assert f"{sc['recurrence_rate_pct']} % (0 of 1)" in words
    assert report["credits"]["total"] == "150.00"
    assert "1000.00 x 10 % = 100.00 EUR" in words and "total subtotal 150.00 EUR" in words
    assert "response inc-1 S1 50.00 EUR" in words
    # the open dispute, marked on the incident row, with the vendor's text in Latin-1
    assert "DISPUTED d-1" in words and "OPEN" in words and "(disputed)" in words
    assert "vendor:integrator, 2026-" in words and "Lódz logs:" in words
    for month in trend_months("2026-09")[:-1]:
        assert f"{month} n/a 0 n/a n/a 0.00 100.00" in words  # nothing measured: n/a, full marks
    assert f"2026-09 {line['uptime_pct']} % 1 1h 30m 2h 59m {report['credits']['total']} {sc['score']}" in words
    assert "Incidents by severity" in words and "Uptime % of line3-plc, twelve months" in words

    subprocess.run(["pdftoppm", "-r", "30", "-png", str(out), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) >= 2
    colours: set[tuple[int, ...]] = set()
    for page in pages:
        with Image.open(page) as img:
            colours |= {c for _, c in (img.convert("RGB").getcolors(1 << 20) or []) if isinstance(c, tuple)}
    # the September bar of the uptime trend is below target (red), the S1 incident bar red, credit bars blue
    assert any(abs(r - 200) < 20 and abs(g - 50) < 20 and abs(b - 50) < 20 for r, g, b in colours)
    assert any(abs(r - 60) < 20 and abs(g - 100) < 20 and abs(b - 170) < 20 for r, g, b in colours)


def _parse(text: str) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows and all(len(r) == len(rows[0]) for r in rows), "one header and rows of its width"
    return rows


def test_each_csv_is_one_table(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = _json_report(config, capsys)
    assert main(["collector", "report", "--config", str(config), "--period", "2026-09", "--format", "csv",
                 "--table", "uptime"]) == 0  # fmt: skip
    head, *rows = _parse(capsys.readouterr().out)
    assert head == list(TABLES["uptime"])
    assert [r[0] for r in rows] == ["plc-support", "scada-support"]
    assert dict(zip(head, rows[0], strict=True))["uptime_pct"] == report["uptime"][0]["uptime_pct"]

    out = tmp_path / "tables.zip"
    assert main(["collector", "review", "--config", str(config), "--period", "2026-09", "--format", "zip",
                 "--output", str(out)]) == 0  # fmt: skip
    with zipfile.ZipFile(out) as z:
        tables = {name.removesuffix(".csv"): _parse(z.read(name).decode("utf-8")) for name in z.namelist()}
    assert set(tables) == set(TABLES)
    for name, (header, *_) in tables.items():
        assert header[: len(TABLES[name])] == list(TABLES[name])
    incidents = [dict(zip(tables["incidents"][0], r, strict=True)) for r in tables["incidents"][1:]]
    assert [(i["contract"], i["incident"], i["disputed"]) for i in incidents] == [
        ("plc-support", "inc-1", "d-1"), ("scada-support", "inc-1", "")
    ]
    [d] = [dict(zip(tables["disputes"][0], r, strict=True)) for r in tables["disputes"][1:]]
    assert (d["dispute"], d["state"], d["disputed"]) == ("d-1", "open", "2026-09-10 09:31:00")
    assert d["reason"].startswith("Łódź") and "'=" not in d["reason"]  # only a leading = is defused
    credits = [dict(zip(tables["credits"][0], r, strict=True)) for r in tables["credits"][1:]]
    assert [c["amount"] for c in credits if c["contract"] == "plc-support"] == ["100.00", "50.00", "150.00 EUR"]

    capsys.readouterr()
    assert main(["collector", "review", "--config", str(config), "--period", "2026-09", "--format", "csv",
                 "--table", "disputes", "--output", "-"]) == 0  # fmt: skip
    assert _parse(capsys.readouterr().out)[0] == list(TABLES["disputes"])
    assert main(["collector", "review", "--config", str(config), "--period", "2026-09", "--format", "csv",
                 "--output", "-"]) == 2  # fmt: skip
    assert main(["collector", "review", "--config", str(config), "--period", "2026-09", "--output", "x.pdf"]) == 2
    assert main(["collector", "review", "--config", str(config), "--period", "2026-09", "--contract", "nope",
                 "--output", str(tmp_path / "x.pdf")]) == 2  # fmt: skip
    assert not (tmp_path / "x.pdf").exists()


async def test_the_api_serves_the_pdf_and_the_tables(config: Path, tmp_path: Path) -> None:
    async with running_api(config) as api:
        found = await api.http.get("/reports/2026-09.pdf", headers=api.vendor)  # its one contract
        assert found.status_code == 200 and found.headers["content-type"] == "application/pdf"
        (tmp_path / "api.pdf").write_bytes(found.content)
        words = " ".join(_pdf_text(tmp_path / "api.pdf").split())
        json_report = (await api.http.get("/reports/2026-09", headers=api.vendor)).json()[0]
        assert f"{json_report['uptime'][0]['uptime_pct']} %" in words and "150.00 EUR" in words
        partial = await api.http.get("/reports/2026-09.pdf", params={"as_of": "2026-09-10T09:00:00Z"},
                                     headers=api.vendor)  # fmt: skip
        (tmp_path / "partial.pdf").write_bytes(partial.content)
        assert "PARTIAL PERIOD" in " ".join(_pdf_text(tmp_path / "partial.pdf").split())
        assert (await api.http.get("/reports/2026-09.pdf", params={"contract": "plc-support"},
                                   headers=api.other)).status_code == 403  # fmt: skip
        assert (await api.http.get("/reports/2026-09.pdf", headers=api.plant)).status_code == 422  # two contracts
        assert (await api.http.get("/reports/2026-13.pdf", headers=api.plant)).status_code == 422

        table = await api.http.get("/reports/2026-09/credits.csv", headers=api.other)
        assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
        assert {r[0] for r in _parse(table.text)[1:]} == {"scada-support"}, "a vendor's tables hold its own only"
        assert (await api.http.get("/reports/2026-09/nope.csv", headers=api.plant)).status_code == 404
        zipped = await api.http.get("/reports/2026-09.zip", headers=api.plant)
        with zipfile.ZipFile(io.BytesIO(zipped.content)) as z:
            assert sorted(z.namelist()) == sorted(f"{t}.csv" for t in TABLES)


def test_long_vendor_texts_fit_the_page(config: Path, tmp_path: Path) -> None:
    cfg = load(CollectorConfig, config)
    book = load_book(cfg, config)
    store = open_store(cfg)
    try:
        open_dispute(store, book, tmp_path, "plc-support", "inc-1", "integrator", "cause", "x " * 250,
                     "word " * 399, [], [], "vendor:integrator", "here", wall_clock_ms())  # fmt: skip
        pdf = monthly_review_pdf(store, book, "2026-09", "plc-support", None, wall_clock_ms(), checkpoint=None)
    finally:
        store.close()
    (tmp_path / "long.pdf").write_bytes(pdf)
    words = " ".join(_pdf_text(tmp_path / "long.pdf", "-raw").split())
    # the reason is kept whole (1,994 characters once stripped); the review shows the cell's first 280
    shown = r"vendor:integrator, [0-9-]+ [0-9:]+: ((?:word )+)"
    cut = re.search(shown + r"\.\.\. \((\d+) more characters: see the dispute\)", words)
    assert cut is not None and len(cut.group(1)) + int(cut.group(2)) == 1994
    assert len(cut.group(0).split("...")[0]) == 280


def test_text_outside_latin_1() -> None:
    assert text("Łódź – ✓ é") == "Lódz - ? é"


def test_the_review_lists_the_notable_incidents_first() -> None:
    def inc(n: int, sev: Severity, breached: bool = False, disputed: bool = False) -> IncidentResult:
        clock = Clock(1, 1, True, not breached)
        return IncidentResult(f"i{n}", "a", "r", sev, None, n, n, None, None, None, None, clock, None, False, None,
                              ("d-1",) if disputed else ())  # fmt: skip

    found = [inc(0, Severity.S4), inc(1, Severity.S1), inc(2, Severity.S3, breached=True),
             inc(3, Severity.S4, disputed=True), inc(4, Severity.S2)]  # fmt: skip
    assert [i.id for i in notable(found, 3)] == ["i1", "i2", "i3"]  # kept in report order
    assert notable(found, 10) == found
