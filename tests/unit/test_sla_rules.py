"""Table tests for the SLA rules: periods, service states, clocks, recurrence, RCA, changes, credits."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from linewarden.calendar import Calendar
from linewarden.config.contract import BreachCredit, BreachCredits, BusinessDays, Credits, RcaPolicy, UptimeBand
from linewarden.domain import Severity, State
from linewarden.sla.changes import is_approved
from linewarden.sla.clocks import run_clock
from linewarden.sla.credits import Breach, UptimeOutcome, credit_summary
from linewarden.sla.models import AssetTimeline, ChangeDetection, Incident, MaintenanceWindow, Pause, StateChange
from linewarden.sla.periods import month, month_containing, parse_month
from linewarden.sla.rca import rca_result
from linewarden.sla.recurrence import WINDOW_MS, recurring_ids
from linewarden.sla.rounding import uptime_pct
from linewarden.sla.services import service_state

H = 3_600_000
U, D, G, X = State.UP, State.DOWN, State.DEGRADED, State.UNKNOWN


def test_month_lengths_follow_dst() -> None:
    assert month(2026, 3, "Europe/Berlin").length_ms == 743 * H
    assert month(2026, 10, "Europe/Berlin").length_ms == 745 * H
    assert month(2026, 12, "UTC").length_ms == 31 * 24 * H
    p = parse_month("2026-11", "America/Chicago")
    assert p.length_ms == 721 * H and month_containing(p.end_ms - 1, "America/Chicago") == p
    with pytest.raises(ValueError):
        parse_month("2026-13", "UTC")


@pytest.mark.parametrize(
    ("states", "k", "expected"),
    [
        ([U, U, U], 3, U),
        ([U, G, U], 3, G),
        ([U, D, U], 3, D),
        ([U, X, U], 3, X),
        ([D, X, U], 3, D),
        ([D, D, U], 1, U),
        ([D, D, G], 1, G),
        ([D, D, X], 1, X),
        ([D, D, D], 1, D),
        ([U, G, D], 2, G),
        ([U, D, D], 2, D),
        ([U, X, D], 2, X),
        ([U, U, D], 2, U),
    ],
)
def test_service_state(states: list[State], k: int, expected: State) -> None:
    assert service_state(states, k) == expected


def test_clock_open_at_period_end_is_breached_only_when_over_target() -> None:
    cal = Calendar.always("UTC")
    assert run_clock(cal, 0, None, (), 30 * 60_000, H).met is None
    running = run_clock(cal, 0, 5 * H, (), 2 * H, H)
    assert (running.elapsed_ms, running.stopped, running.met) == (2 * H, False, False)
    assert run_clock(cal, 0, H, (), 2 * H, H).met is True
    assert run_clock(cal, 0, 2 * H, (Pause(H // 2, None),), 4 * H, H).elapsed_ms == H // 2
    assert run_clock(cal, 0, 2 * H, (), 4 * H, None).met is None


def incident(id: str, opened: int, restored: int | None, asset: str = "a", reason: str = "r") -> Incident:
    return Incident(id, asset, Severity.S1, reason, opened, restored_at_ms=restored)


def test_recurrence_needs_a_restored_previous_incident() -> None:
    got = recurring_ids(
        [
            incident("1", 0, H),
            incident("2", 2 * H, None),
            incident("3", 3 * H, 4 * H),
            incident("4", 4 * H + WINDOW_MS + 1, None),
            incident("5", 5 * H, None, reason="other"),
        ],
        10**12,
    )
    assert got == {"2"}


def test_a_planned_stop_neither_recurs_nor_makes_a_later_fault_recur() -> None:
    history = [incident("planned", 0, H), incident("fault", 2 * H, 3 * H), incident("again", 4 * H, None)]
    assert recurring_ids(history, 10**12) == {"fault", "again"}
    assert recurring_ids(history, 10**12, planned={"planned"}) == {"again"}


def test_rca_deadline_in_business_days_or_duration() -> None:
    inc = Incident("i", "a", Severity.S1, "r", 0, notified_at_ms=0, restored_at_ms=H, rca_received_at_ms=49 * H)
    cal = Calendar.always("UTC")
    on_time = rca_result(inc, RcaPolicy(severities=[Severity.S1], due=BusinessDays(days=2)), cal, 10**12)
    assert on_time is not None and on_time.status == "on_time"
    late = rca_result(inc, RcaPolicy(severities=[Severity.S1], due=timedelta(hours=24)), cal, 10**12)
    assert late is not None and (late.due_ms, late.status) == (25 * H, "late")
    assert rca_result(inc, RcaPolicy(severities=[Severity.S2]), cal, 10**12) is None
    assert rca_result(inc, RcaPolicy(), cal, 0).status == "not_due"  # type: ignore[union-attr]


def test_change_approval_needs_a_window_announced_before_the_change() -> None:
    w = MaintenanceWindow("w", 10, 20, announced_at_ms=0, announced_by="v", services=("svc",))
    services_of = {"a": frozenset({"svc"})}
    assert is_approved(ChangeDetection("a", 15, "x"), [w], services_of)
    assert not is_approved(ChangeDetection("a", 20, "x"), [w], services_of)
    assert not is_approved(ChangeDetection("b", 15, "x"), [w], services_of)
    late = MaintenanceWindow("w", 10, 20, announced_at_ms=16, announced_by="v", assets=("a",))
    assert not is_approved(ChangeDetection("a", 15, "x"), [late], {})


def test_credits_lowest_band_and_cap() -> None:
    credits = Credits(
        uptime=[
            UptimeBand(below_pct=Decimal("99.9"), fee_pct=Decimal(10)),
            UptimeBand(below_pct=Decimal(99), fee_pct=Decimal(50)),
        ],
        breach=BreachCredits(S1=BreachCredit(response_fee_pct=Decimal("0.005"))),
        cap_fee_pct=Decimal(30),
    )
    fee = Decimal("100.00")
    out = credit_summary([UptimeOutcome("a", Fraction(995, 10), False)], [], credits, fee)
    assert out.total == Decimal("10.00") and not out.capped
    assert credit_summary([UptimeOutcome("a", Fraction(98), False)], [], credits, fee).total == Decimal("30.00")
    assert credit_summary([UptimeOutcome("a", Fraction(98), True)], [], credits, fee).total == Decimal("0.00")
    tiny = credit_summary([], [Breach("i", Severity.S1, "response")], credits, fee)
    assert tiny.subtotal == Decimal("0.005") and tiny.total == Decimal("0.01")  # half up, once


def test_uptime_is_truncated_never_rounded_up() -> None:
    assert uptime_pct(Fraction(9999999, 100000)) == Decimal("99.9999")
    assert uptime_pct(Fraction(100)) == Decimal("100.0000")


def test_timeline_from_changes() -> None:
    t = AssetTimeline.from_changes("a", [StateChange(5, D), StateChange(0, U)], 9)
    assert [(s.start_ms, s.end_ms, s.state) for s in t.segments] == [(0, 5, U), (5, 9, D)]
