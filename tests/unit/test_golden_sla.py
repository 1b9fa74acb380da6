"""Golden SLA cases: each folder in tests/golden/ holds contract.toml, input.json, expected.json, an
optional calendars/ folder of calendar TOML files, and a README.md with the hand arithmetic.

input.json: {"period": "YYYY-MM", "as_of"?, "production"?: calendar id, "criticality"?: {asset: class},
"timelines": {asset: [[start, end, state], ...]}, "gaps": [...], "windows": [...], "incidents": [...],
"changes": [...]}; every time is an ISO 8601 string with its UTC offset.
expected.json is a subset of the report's `to_dict()`: every key it names must be equal; lists must
have the same length and match item by item.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from linewarden.calendar import Calendar
from linewarden.config.calendar import CalendarConfig
from linewarden.config.contract import ContractConfig
from linewarden.config.load import load
from linewarden.domain import Criticality, Severity, State
from linewarden.sla.coverage import CoverageCalendar
from linewarden.sla.models import (
    AssetTimeline,
    ChangeDetection,
    ConfigurationFault,
    Incident,
    MaintenanceWindow,
    MonitoringGap,
    Pause,
    Segment,
    SlaInputs,
)
from linewarden.sla.periods import parse_month
from linewarden.sla.report import build_report
from linewarden.timeutil import dt_to_ms

GOLDEN = Path(__file__).parent.parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "expected.json").exists())


def ms(text: str | None) -> int | None:
    return None if text is None else dt_to_ms(datetime.fromisoformat(text))


def must_ms(text: str) -> int:
    return dt_to_ms(datetime.fromisoformat(text))


def inputs_from(data: dict[str, Any]) -> SlaInputs:
    return SlaInputs(
        timelines=tuple(
            AssetTimeline(asset, tuple(Segment(must_ms(s), must_ms(e), State(st)) for s, e, st in segs))
            for asset, segs in data.get("timelines", {}).items()
        ),
        gaps=tuple(
            MonitoringGap(must_ms(g["start"]), must_ms(g["end"]), tuple(g.get("assets", ())), g.get("reason", ""))
            for g in data.get("gaps", [])
        ),
        windows=tuple(
            MaintenanceWindow(
                id=w["id"],
                start_ms=must_ms(w["start"]),
                end_ms=must_ms(w["end"]),
                announced_at_ms=must_ms(w["announced_at"]),
                announced_by=w.get("announced_by", "vendor"),
                assets=tuple(w.get("assets", ())),
                services=tuple(w.get("services", ())),
                kind=w.get("kind", "maintenance"),
                cancelled=w.get("cancelled", False) or "cancelled_at" in w,
                cancelled_at_ms=ms(w.get("cancelled_at")),
                back_dated=w.get("back_dated", False),
            )
            for w in data.get("windows", [])
        ),
        incidents=tuple(
            Incident(
                id=i["id"],
                asset=i["asset"],
                severity=Severity(i["severity"]),
                vendor_severity=Severity(i["vendor_severity"]) if i.get("vendor_severity") else None,
                reason=i.get("reason", ""),
                opened_at_ms=must_ms(i["opened_at"]),
                notified_at_ms=ms(i.get("notified_at")),
                acknowledged_at_ms=ms(i.get("acknowledged_at")),
                pauses=tuple(Pause(must_ms(s), ms(e)) for s, e in i.get("pauses", [])),
                restored_at_ms=ms(i.get("restored_at")),
                workaround_accepted_at_ms=ms(i.get("workaround_accepted_at")),
                resolution_claimed_at_ms=ms(i.get("resolution_claimed_at")),
                rca_received_at_ms=ms(i.get("rca_received_at")),
                cause=i.get("cause", ""),
            )
            for i in data.get("incidents", [])
        ),
        changes=tuple(ChangeDetection(c["asset"], must_ms(c["at"]), c["what"]) for c in data.get("changes", [])),
        criticality={a: Criticality(c) for a, c in data.get("criticality", {}).items()},
        configuration=tuple(
            ConfigurationFault(f["asset"], must_ms(f["start"]), must_ms(f["end"]), f.get("cause", ""))
            for f in data.get("configuration", [])
        ),
    )


def calendars_of(case: Path, data: dict[str, Any]) -> dict[str, CoverageCalendar]:
    found: dict[str, CoverageCalendar] = {}
    for path in sorted((case / "calendars").glob("*.toml")):
        section = load(CalendarConfig, path).calendar
        found[section.id] = Calendar.from_config(section)
    if "production" in data:
        found["production"] = found[data["production"]]
    return found


def assert_subset(expected: Any, actual: Any, where: str = "report") -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}: no key {key!r}"
            assert_subset(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r}"
        for n, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_subset(e, a, f"{where}[{n}]")
    else:
        assert actual == expected, f"{where}: expected {expected!r}, got {actual!r}"


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    folder = GOLDEN / case
    contract = load(ContractConfig, folder / "contract.toml")
    data = json.loads((folder / "input.json").read_text(encoding="utf-8"))
    period = parse_month(data["period"], contract.contract.timezone)
    report = build_report(contract, period, inputs_from(data), calendars_of(folder, data), ms(data.get("as_of")))
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    assert_subset(expected, json.loads(report.to_json()))


def test_every_case_explains_its_arithmetic() -> None:
    assert len(CASES) >= 12
    for case in CASES:
        assert (GOLDEN / case / "README.md").read_text(encoding="utf-8").strip(), case
