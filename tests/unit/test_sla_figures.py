"""The rules behind reported figures (docs/figures.md): as-of reports of partial periods, unobserved lines,
observed shares, credit bands, and which ticket records a contract's clocks read."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from collector.reporting import configuration_faults, incident_input, parse_as_of, scorecard_row
from collector.store.rows import IncidentRow, PeriodData, SeverityStep, StateChangeRow, TicketRecordRow
from linewarden.calendar import Calendar
from linewarden.config.contract import ContractConfig
from linewarden.config.load import load
from linewarden.domain import Severity, State
from linewarden.errors import ConfigError
from linewarden.sla.clocks import run_clock
from linewarden.sla.models import (
    AssetTimeline,
    ConfigurationFault,
    Incident,
    MaintenanceWindow,
    MonitoringGap,
    Segment,
    SlaInputs,
)
from linewarden.sla.periods import Period, report_as_of
from linewarden.sla.report import ContractReport, build_report

H = 3_600_000
DAY = 24 * H
PERIOD = Period("2026-06", 0, 30 * DAY)  # June as seen from UTC: 720 h; times are ms from its start

CONTRACT = """
[contract]
id = "c"
vendor = "v"
document_sha256 = "9f2c6b1e0d5a4c3b2a19f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3"
currency = "EUR"
fee_per_period = 1000.00
timezone = "UTC"

[scope]
assets = ["a"]

[support]
tier = "t"
[support.targets]
S1 = { response = "1h", resolution = "4h" }

[[uptime]]
scope = "a"
target_pct = 99.9
MIN_OBSERVED

[maintenance]
notice = "72h"
monitoring_gaps = "POLICY"

[credits]
[[credits.uptime]]
below_pct = 99.9
fee_pct = 10
[[credits.uptime]]
below_pct = 99.0
fee_pct = FEE_99
[credits.breach]
S1 = { response_amount = 50.00 }
"""


def contract(
    tmp_path: Path, policy: str = "exclude", min_observed: str = "", fee_99: str = "25"
) -> ContractConfig:
    text = CONTRACT.replace("POLICY", policy).replace("MIN_OBSERVED", min_observed).replace("FEE_99", fee_99)
    path = tmp_path / "contract.toml"
    path.write_text(text)
    return load(ContractConfig, path)


def report(c: ContractConfig, inputs: SlaInputs, as_of_ms: int | None = None) -> ContractReport:
    return build_report(c, PERIOD, inputs, {}, as_of_ms)


def timeline(*segments: tuple[int, int, State]) -> tuple[AssetTimeline, ...]:
    return (AssetTimeline("a", tuple(Segment(s, e, st) for s, e, st in segments)),)


# ---------------------------------------------------------------- credit bands


def test_bands_whose_credit_falls_as_uptime_falls_are_refused_naming_file_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        contract(tmp_path, fee_99="5")
    assert exc.value.file == str(tmp_path / "contract.toml") and exc.value.key == "credits.uptime"
    assert "band [1] (below_pct 99.0) has fee_pct 5, less than the 10 of band [0]" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_bands_with_an_equal_credit_are_allowed(tmp_path: Path) -> None:
    assert [b.fee_pct for b in contract(tmp_path, fee_99="10").credits.uptime] == [10, 10]


# ---------------------------------------------------------------- unobserved time


@pytest.mark.parametrize("policy", ["exclude", "up", "down"])
def test_a_line_never_observed_has_no_uptime_and_no_credit_whatever_the_gap_policy(
    tmp_path: Path, policy: str
) -> None:
    r = report(contract(tmp_path, policy), SlaInputs())
    [line] = r.uptime
    assert (line.status, line.uptime_pct, line.met, line.observed_ms) == ("not_observed", None, None, 0)
    assert line.observed_pct == 0 and line.measure.gap_ms == 30 * DAY
    assert r.credits.lines == () and r.scorecard.uptime_lines_undecided == 1
    assert r.scorecard.score_parts.uptime == 40


@pytest.mark.parametrize("policy", ["exclude", "up", "down"])
def test_time_a_target_was_unmeasurable_by_its_configuration_is_never_the_vendors(tmp_path: Path, policy: str) -> None:
    # configuration: UNKNOWN for the first 12 h (config.unknown_node), then UP; an agent silent 20 d → 20 d + 12 h
    fault = ConfigurationFault("a", 0, 12 * H, "config.unknown_node")
    silent = MonitoringGap(20 * DAY, 20 * DAY + 12 * H, ("a",))
    inputs = SlaInputs(timelines=timeline((12 * H, 30 * DAY, State.UP)), gaps=(silent,), configuration=(fault,))
    r = report(contract(tmp_path, policy), inputs)
    [line] = r.uptime
    assert line.measure.gap_ms == 24 * H and line.observed_pct == Decimal("96.66")
    assert line.measure.excluded_ms == (24 if policy == "exclude" else 12) * H
    assert line.measure.down_ms == (12 * H if policy == "down" else 0)
    kinds = [(x.reason, x.start_ms, x.ms) for x in r.exclusions]
    assert kinds[0] == ("configuration", 0, 12 * H) and len(kinds) == (2 if policy == "exclude" else 1)


def test_a_service_undecidable_by_a_components_configuration_is_not_the_vendors(tmp_path: Path) -> None:
    text = CONTRACT.replace("POLICY", "down").replace("MIN_OBSERVED", "").replace("FEE_99", "25")
    text = text.replace('scope = "a"\n', 'scope = "line"\n').replace('assets = ["a"]', 'services = ["line"]')
    path = tmp_path / "service.toml"
    path.write_text(text + '\n[[services]]\nid = "line"\ncomponents = ["a", "b"]\nrule = "all"\n')
    both_up = (AssetTimeline("a", (Segment(12 * H, 30 * DAY, State.UP),)),
               AssetTimeline("b", (Segment(0, 30 * DAY, State.UP),)))  # fmt: skip
    fault = ConfigurationFault("a", 0, 12 * H, "config.unknown_namespace")
    [line] = report(load(ContractConfig, path), SlaInputs(timelines=both_up, configuration=(fault,))).uptime
    assert (line.kind, line.measure.gap_ms, line.measure.down_ms, line.met) == ("service", 12 * H, 0, True)


def test_a_change_to_unknown_with_a_configuration_cause_is_a_fault_until_the_next_change() -> None:
    def change(at: int, to: str, cause: str | None = None, target: str = "t") -> StateChangeRow:
        return StateChangeRow("s", "g", target, "a", "UNKNOWN", to, "r", at, cause)

    data = PeriodData(0, 30 * DAY, (change(0, "UNKNOWN", "config.illegal_address"), change(H, "UP"),
                                    change(2 * H, "UNKNOWN", "probe.hung"),
                                    change(3 * H, "UNKNOWN", "config.unknown_node", "u")), (), (), (), ())  # fmt: skip
    assert configuration_faults(data) == (
        ConfigurationFault("a", 0, H, "config.illegal_address"),
        ConfigurationFault("a", 3 * H, 30 * DAY, "config.unknown_node"),
    )


def test_a_line_all_inside_timely_maintenance_is_not_observed(tmp_path: Path) -> None:
    window = MaintenanceWindow("w", 0, 30 * DAY, announced_at_ms=-4 * DAY, announced_by="v", assets=("a",))
    r = report(contract(tmp_path), SlaInputs(timelines=timeline((0, 30 * DAY, State.DOWN)), windows=(window,)))
    [line] = r.uptime
    assert line.status == "not_observed" and line.observed_pct is None and line.met is None


def test_below_the_minimum_observed_share_is_insufficient_data(tmp_path: Path) -> None:
    # seen 144 h of 720 (20 %), 1 h of it down: 143 / 144 = 99.3055…%
    seen = timeline((0, 143 * H, State.UP), (143 * H, 144 * H, State.DOWN))
    strict = report(contract(tmp_path, min_observed="min_observed_pct = 20.01"), SlaInputs(timelines=seen))
    [line] = strict.uptime
    assert (line.status, line.met, str(line.uptime_pct), str(line.observed_pct)) == (
        "insufficient_data", None, "99.3055", "20.00")  # fmt: skip
    assert strict.credits.lines == ()
    enough = report(contract(tmp_path, min_observed="min_observed_pct = 20"), SlaInputs(timelines=seen))
    assert enough.uptime[0].status == "measured" and enough.uptime[0].met is False
    assert enough.credits.total == Decimal("100.00")  # 10 % of 1 000.00


# ---------------------------------------------------------------- as of


def test_running_clock_shows_the_time_left() -> None:
    always = Calendar.always()
    running = run_clock(always, 0, 5 * H, (), as_of_ms=H // 4, target_ms=H)
    assert (running.stopped, running.met, running.left_ms) == (False, None, 3 * H // 4)
    over = run_clock(always, 0, 5 * H, (), as_of_ms=2 * H, target_ms=H)
    assert (over.met, over.left_ms) == (False, None)
    assert run_clock(always, 0, H // 2, (), as_of_ms=2 * H, target_ms=H).left_ms is None


def test_a_partial_period_measures_only_the_time_before_as_of(tmp_path: Path) -> None:
    as_of = 10 * DAY
    late_window = MaintenanceWindow("late", 2 * DAY, 2 * DAY + H, announced_at_ms=11 * DAY, announced_by="v",
                                    assets=("a",))  # fmt: skip
    segments = timeline(
        (0, 2 * DAY, State.UP),
        (2 * DAY, 2 * DAY + H, State.DOWN),
        (2 * DAY + H, 30 * DAY, State.UP),
        (20 * DAY, 21 * DAY, State.DOWN),
    )
    acknowledged_later = Incident(
        "i", "a", Severity.S1, "x", 2 * DAY, notified_at_ms=2 * DAY, acknowledged_at_ms=11 * DAY,
        restored_at_ms=2 * DAY + H,
    )  # fmt: skip
    opened_later = Incident("later", "a", Severity.S1, "y", 20 * DAY, notified_at_ms=20 * DAY)
    inputs = SlaInputs(timelines=segments, windows=(late_window,), incidents=(acknowledged_later, opened_later))
    r = report(contract(tmp_path), inputs, as_of)
    [line] = r.uptime
    assert r.partial and line.measure.covered_ms == as_of and line.measure.down_ms == H
    assert r.short_notice == () and r.exclusions == ()  # the window was announced after as_of
    [incident] = r.incidents
    assert incident.id == "i" and incident.acknowledged_ms is None
    assert incident.response is not None and incident.response.met is False  # 8 days unacknowledged: breached
    assert incident.resolution is not None and incident.resolution.met is True


@pytest.mark.parametrize(
    ("cancelled_at", "as_of", "excluded"),
    [
        (10 * DAY, None, 4 * H),  # cancelled after it ran: it stays whole
        (5 * DAY + H, None, H),  # cancelled while it ran: it ends there
        (4 * DAY, None, 0),  # cancelled before it started: it never was
        (10 * DAY, 6 * DAY, 4 * H),  # a report as of before the cancellation does not know it
        (5 * DAY + H, 5 * DAY + H // 2, H // 2),  # nor one as of half an hour into the window
    ],
)
def test_a_cancellation_takes_effect_when_it_is_made(
    tmp_path: Path, cancelled_at: int, as_of: int | None, excluded: int
) -> None:
    window = MaintenanceWindow("w", 5 * DAY, 5 * DAY + 4 * H, announced_at_ms=0, announced_by="v", assets=("a",),
                               cancelled=True, cancelled_at_ms=cancelled_at)  # fmt: skip
    down = (5 * DAY, 5 * DAY + 4 * H, State.DOWN)
    segments = timeline((0, 5 * DAY, State.UP), down, (5 * DAY + 4 * H, 30 * DAY, State.UP))
    [line] = report(contract(tmp_path), SlaInputs(timelines=segments, windows=(window,)), as_of).uptime
    assert line.measure.maintenance_ms == excluded


def test_an_as_of_after_the_period_lets_its_clocks_finish(tmp_path: Path) -> None:
    restored_after_the_end = Incident(
        "i", "a", Severity.S1, "x", 30 * DAY - H, notified_at_ms=30 * DAY - H,
        acknowledged_at_ms=30 * DAY - H // 2, restored_at_ms=30 * DAY + H,
    )  # fmt: skip
    inputs = SlaInputs(timelines=timeline((0, 30 * DAY, State.UP)), incidents=(restored_after_the_end,))
    at_end = report(contract(tmp_path), inputs)
    resolution = at_end.incidents[0].resolution
    assert not at_end.partial and resolution is not None and resolution.stopped is False
    later = report(contract(tmp_path), inputs, 31 * DAY)
    assert not later.partial and later.uptime[0].measure.covered_ms == 30 * DAY
    resolution = later.incidents[0].resolution
    assert resolution is not None and resolution.stopped and resolution.elapsed_ms == 2 * H and resolution.met


def test_an_incident_raised_after_as_of_is_listed_as_not_raised_yet(tmp_path: Path) -> None:
    raised_later = Incident("i", "a", Severity.S1, "x", 2 * DAY, notified_at_ms=2 * DAY + H,
                            restored_at_ms=2 * DAY + H // 2)  # fmt: skip
    inputs = SlaInputs(timelines=timeline((0, 30 * DAY, State.UP)), incidents=(raised_later,))
    [incident] = report(contract(tmp_path), inputs, 2 * DAY + H // 2).incidents
    assert (incident.notified_ms, incident.response, incident.resolution, incident.rca) == (None, None, None, None)


def test_an_incident_never_raised_to_the_vendor_owes_no_rca(tmp_path: Path) -> None:
    inside_a_window = Incident("quiet", "a", Severity.S1, "planned stop", 2 * DAY, restored_at_ms=2 * DAY + H)
    raised = Incident("raised", "a", Severity.S1, "x", 3 * DAY, notified_at_ms=3 * DAY, restored_at_ms=3 * DAY + H)
    inputs = SlaInputs(timelines=timeline((0, 30 * DAY, State.UP)), incidents=(inside_a_window, raised))
    r = report(contract(tmp_path), inputs)
    rcas = {i.id: None if i.rca is None else i.rca.status for i in r.incidents}
    assert rcas == {"quiet": None, "raised": "late"}  # 5 business days after 4 June, unreceived by 30 June
    assert (r.scorecard.rca_on_time, r.scorecard.rca_late, r.scorecard.rca_pending) == (0, 1, 0)


def test_the_scorecard_row_counts_pending_rcas_apart_from_those_decided(tmp_path: Path) -> None:
    restored = Incident("i", "a", Severity.S1, "x", 2 * DAY, notified_at_ms=2 * DAY, restored_at_ms=2 * DAY + H)
    inputs = SlaInputs(timelines=timeline((0, 30 * DAY, State.UP)), incidents=(restored,))
    assert scorecard_row(report(contract(tmp_path), inputs, 3 * DAY))["rca_on_time"] == "0/0 (1 pending)"
    assert scorecard_row(report(contract(tmp_path), inputs))["rca_on_time"] == "0/1"  # late by the month's end


def test_default_as_of_is_now_for_a_period_not_over_else_its_end() -> None:
    assert report_as_of(PERIOD, 5 * DAY) == 5 * DAY
    assert report_as_of(PERIOD, 40 * DAY) == 40 * DAY
    assert report_as_of(PERIOD, None) == 30 * DAY


def test_as_of_needs_its_zone() -> None:
    assert parse_as_of("1970-01-01T01:00:00+01:00") == 0
    assert parse_as_of("1970-01-01T00:00:01Z") == 1000
    for bad in ("1970-01-01T00:00:00", "now"):
        with pytest.raises(ValueError):
            parse_as_of(bad)


# ---------------------------------------------------------------- ticket records per contract


def _row(*records: TicketRecordRow, steps: tuple[SeverityStep, ...] = ()) -> IncidentRow:
    return IncidentRow(id="i", site="s", agent="g", kind="target", target="t", asset="a", criticality="critical",
                       severity="S2", reason="x", opened_at=0, resolved_at=None, resolve_reason=None, targets=(),
                       severity_history=steps, tickets=records)  # fmt: skip


def _rec(kind: str, at: int, contract: str = "") -> TicketRecordRow:
    return TicketRecordRow("i", contract, kind, at, "actor", {}, "test")


def test_a_contract_with_its_own_ticket_never_reads_records_that_name_no_contract() -> None:
    row = _row(_rec("ticket_raised", 60), _rec("ticket_acknowledged", 600), _rec("ticket_raised", 120, "c"),
               _rec("ticket_acknowledged", 900, "c"), _rec("ticket_paused", 200))  # fmt: skip
    own = incident_input(row, "c")
    assert own is not None and (own.notified_at_ms, own.acknowledged_at_ms, own.pauses) == (120, 900, ())
    unnamed = incident_input(row, "other")
    assert unnamed is not None and (unnamed.notified_at_ms, unnamed.acknowledged_at_ms) == (60, 600)
    assert unnamed.pauses[0].start_ms == 200


def test_records_and_severity_steps_after_as_of_are_not_known() -> None:
    row = _row(_rec("ticket_raised", 60, "c"), _rec("ticket_acknowledged", 900, "c"),
               steps=(SeverityStep(500, "S1", "DOWN", "worse", True),))  # fmt: skip
    early = incident_input(row, "c", as_of_ms=400)
    assert early is not None and early.severity == Severity.S2 and early.acknowledged_at_ms is None
    late = incident_input(row, "c", as_of_ms=1000)
    assert late is not None and late.severity == Severity.S1 and late.acknowledged_at_ms == 900
