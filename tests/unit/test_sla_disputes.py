"""Settled disputes applied to the SLA inputs (linewarden/sla/disputes.py): table tests of each field's
effect on the report's figures, and properties of the transformation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linewarden.config.contract import ContractConfig
from linewarden.domain import Severity, State
from linewarden.sla.disputes import (
    FIELDS,
    TIMING_FIELDS,
    Settlement,
    apply_settlements,
    as_of,
    current_value,
    mark_report,
    parse_value,
)
from linewarden.sla.models import Incident, SlaInputs
from linewarden.sla.recurrence import recurring_ids
from linewarden.sla.results import DisputeNote
from tests.unit.test_sla_figures import DAY, H, contract, report, timeline

OPENED = 10 * DAY  # S1 outage 10 h 00 → 13 h 00, raised 10 h 01, acknowledged 11 h 31 (90 min: breached)
INC = Incident(
    "inc-1", "a", Severity.S1, "connection refused", OPENED, notified_at_ms=OPENED + 60_000,
    acknowledged_at_ms=OPENED + 91 * 60_000, restored_at_ms=OPENED + 3 * H,
)  # fmt: skip
INPUTS = SlaInputs(
    timelines=timeline(
        (0, OPENED, State.UP), (OPENED, OPENED + 3 * H, State.DOWN), (OPENED + 3 * H, 30 * DAY, State.UP)
    ),
    incidents=(INC,),
)
LATER = 40 * DAY  # settlements are made after the period; the reports are as of later still


def settled(field: str, value: object, outcome: str = "accepted", at: int = 31 * DAY, id: str = "d-1") -> Settlement:
    return Settlement(id, "inc-1", field, outcome, value, at)  # type: ignore[arg-type]


@pytest.fixture
def plc(tmp_path: Path) -> ContractConfig:
    return contract(tmp_path)


def figures(c: ContractConfig, *settlements: Settlement, as_of_ms: int = LATER) -> dict[str, object]:
    r = report(c, apply_settlements(INPUTS, settlements, as_of_ms), as_of_ms).to_dict()
    line = r["uptime"][0]
    return {
        "uptime": line["uptime_pct"],
        "down_ms": line["down_ms"],
        "credits": [(c["kind"], c["amount"]) for c in r["credits"]["lines"]],
        "incidents": [(i["id"], i["severity"], i["response"] and i["response"]["met"]) for i in r["incidents"]],
        "exclusions": [(e["windows"], e["ms"]) for e in r["exclusions"]],
    }


def test_without_settlements_the_figures_are_the_measured_ones(plc: ContractConfig) -> None:
    # 3 h down of 720 h: 99.5833 % (band 99.9 → 10 % = 100.00) and the response breach (50.00)
    assert figures(plc) == {
        "uptime": "99.5833", "down_ms": 3 * H, "credits": [("uptime", "100.0000"), ("response", "50.0000")],
        "incidents": [("inc-1", "S1", False)], "exclusions": [],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        # the vendor acknowledged at 10 h 31 (30 min): no response breach
        ("acknowledged_at", OPENED + 31 * 60_000, {"credits": [("uptime", "100.0000")], "response": True}),
        # restored at 10 h 30: 30 min down = 99.9305 %, above 99.9: no uptime credit
        ("restored_at", OPENED + 30 * 60_000, {"uptime": "99.9305", "down_ms": 30 * 60_000,
                                               "credits": [("response", "50.0000")]}),
        # restored at 15 h 00: 5 h down
        ("restored_at", OPENED + 5 * H, {"uptime": "99.3055", "down_ms": 5 * H}),
        # S3 has no target in this contract: no clocks' targets, no breach credit
        ("severity", "S3", {"credits": [("uptime", "100.0000")], "severity": "S3", "response": None}),
        # excluded: no incident, and its 3 h excluded from uptime as the dispute's window
        ("excluded", True, {"uptime": "100.0000", "down_ms": 0, "credits": [], "incidents": [],
                            "exclusions": [(["dispute:d-1"], 3 * H)]}),
        ("excluded", False, {}),
        ("cause", "power cut at the plant", {}),
    ],
)
def test_an_accepted_settlement_replaces_the_disputed_value(
    plc: ContractConfig, field: str, value: object, expected: dict[str, object]
) -> None:
    want = figures(plc)
    for key in ("uptime", "down_ms", "credits", "incidents", "exclusions"):
        want[key] = expected.get(key, want[key])
    if "severity" in expected or "response" in expected:
        want["incidents"] = [("inc-1", expected.get("severity", "S1"), expected.get("response"))]
    assert figures(plc, settled(field, value)) == want
    assert figures(plc, settled(field, value, outcome="amended")) == want


@pytest.mark.parametrize("code", ["", "tcp.refused"])  # without and with a cause code
def test_a_settled_cause_changes_recurrence(code: str) -> None:
    first = dataclasses.replace(INC, cause=code)
    again = Incident("inc-2", "a", Severity.S1, "connection refused", OPENED + 5 * H, restored_at_ms=OPENED + 6 * H,
                     cause=code)  # fmt: skip
    inputs = SlaInputs(incidents=(first, again))
    assert current_value(again, "cause") == (code or "connection refused")
    assert recurring_ids(inputs.incidents, LATER) == {"inc-2"}
    other = Settlement("d-1", "inc-2", "cause", "accepted", "operator pulled the cable", 31 * DAY)
    settled_inputs = apply_settlements(inputs, [other], LATER)
    assert recurring_ids(settled_inputs.incidents, LATER) == set()
    assert settled_inputs.incidents[1].reason == "operator pulled the cable"


def test_rejected_and_later_settlements_change_nothing(plc: ContractConfig) -> None:
    measured = figures(plc)
    assert figures(plc, settled("excluded", True, outcome="rejected")) == measured
    assert figures(plc, settled("excluded", True, at=LATER + 1)) == measured  # not known as of LATER


def test_the_latest_settlement_of_a_field_wins(plc: ContractConfig) -> None:
    first = settled("severity", "S3", at=31 * DAY, id="d-1")
    second = settled("severity", "S1", outcome="amended", at=32 * DAY, id="d-2")
    assert figures(plc, second, first) == figures(plc)


@pytest.mark.parametrize(
    ("field", "raw"),
    [("restored_at", "soon"), ("restored_at", True), ("restored_at", -1), ("severity", "S9"), ("excluded", "yes"),
     ("cause", ""), ("cause", "x" * 501), ("opened_at", 1)],
)  # fmt: skip
def test_bad_values_are_refused(field: str, raw: object) -> None:
    with pytest.raises(ValueError, match=field):
        parse_value(field, raw)


def test_current_values() -> None:
    assert [current_value(INC, f) for f in ("restored_at", "severity", "excluded", "cause")] == [
        OPENED + 3 * H, "S1", False, "connection refused"
    ]


def _note(state: str = "open", settled_ms: int | None = None, id: str = "d-1", incident: str = "inc-1") -> DisputeNote:
    return DisputeNote(
        id, incident, "restored_at", "timing", state, "accepted" if settled_ms else None,  # type: ignore[arg-type]
        OPENED + 3 * H, OPENED + H, OPENED + H if settled_ms else None, "restored at 11:00",
        "ok" if settled_ms else None,
        "vendor:v", 31 * DAY, "plant:p" if settled_ms else None, settled_ms,
    )  # fmt: skip


def test_a_report_lists_its_disputes_as_they_stood_and_marks_open_ones(plc: ContractConfig) -> None:
    done = _note("settled", 33 * DAY)
    r = mark_report(report(plc, INPUTS, 32 * DAY), [done, _note(id="d-2"), _note(id="d-3", incident="x")], [])
    assert [(n.id, n.state) for n in r.disputes] == [("d-1", "open"), ("d-2", "open")]  # d-1 settled after as_of
    assert r.incidents[0].disputed == ("d-1", "d-2")
    later = mark_report(report(plc, INPUTS, LATER), [done], [])
    assert [(n.state, n.outcome) for n in later.disputes] == [("settled", "accepted")]
    assert later.incidents[0].disputed == ()
    assert later.to_dict()["disputes"][0]["settled_value"] == OPENED + H
    assert mark_report(report(plc, INPUTS, 30 * DAY), [done], []).disputes == ()  # opened after as_of
    assert as_of(done, 31 * DAY - 1) is None


# ---------------------------------------------------------------- properties

times = st.integers(min_value=0, max_value=30 * DAY)
values = st.one_of(
    st.tuples(st.sampled_from(TIMING_FIELDS), times),
    st.tuples(st.just("severity"), st.sampled_from([s.value for s in Severity])),
    st.tuples(st.just("excluded"), st.booleans()),
    st.tuples(st.just("cause"), st.text(min_size=1, max_size=20)),
)
settlements = st.lists(
    st.builds(
        lambda fv, outcome, at, n: Settlement(f"d-{n}", "inc-1", fv[0], outcome, fv[1], at),
        values, st.sampled_from(["accepted", "amended", "rejected"]), st.integers(0, 2 * LATER), st.integers(0, 99),
    ),
    max_size=6,
)  # fmt: skip


@given(settlements)
def test_applying_twice_is_applying_once(found: list[Settlement]) -> None:
    once = apply_settlements(INPUTS, found, LATER)
    assert apply_settlements(once, found, LATER) == once


@given(settlements)
def test_only_known_accepted_or_amended_settlements_matter(found: list[Settlement]) -> None:
    kept = [s for s in found if s.outcome != "rejected" and s.settled_at_ms <= LATER]
    assert apply_settlements(INPUTS, found, LATER) == apply_settlements(INPUTS, kept, LATER)
    if not kept:
        assert apply_settlements(INPUTS, found, LATER) == INPUTS


@given(st.sampled_from(TIMING_FIELDS), times)
def test_a_timing_settlement_sets_that_time(field: str, at: int) -> None:
    [changed] = apply_settlements(INPUTS, [settled(field, at)], LATER).incidents
    assert current_value(changed, field) == at


@given(times)
def test_a_settled_restoration_keeps_the_timeline_covering_the_same_time(at: int) -> None:
    before = INPUTS.timelines[0]
    [after] = apply_settlements(INPUTS, [settled("restored_at", at)], LATER).timelines
    assert sum(s.end_ms - s.start_ms for s in after.segments) == sum(s.end_ms - s.start_ms for s in before.segments)
    down = [s for s in after.segments if s.state == State.DOWN]
    assert sum(s.end_ms - s.start_ms for s in down) == max(0, at - OPENED)


def test_every_field_is_parseable() -> None:
    samples = {"severity": "S2", "excluded": True, "cause": "x"}
    for field in FIELDS:
        assert parse_value(field, samples.get(field, 5)) == samples.get(field, 5)
