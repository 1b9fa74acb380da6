"""Condition evaluation: equals, ranges, must_change_within with the time passed in."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.conditions import BlockChecks, ConditionChecker, Failure, code_part, format_seconds, worst
from linewarden.config.load import convert
from linewarden.config.targets import Condition
from linewarden.domain import State


def check(value: object, **condition: object) -> Failure | None:
    return ConditionChecker().check("x", value, convert(Condition, condition), now=0.0)


@pytest.mark.parametrize(
    ("value", "condition", "ok"),
    [
        (1, {"equals": 1}, True),
        (1.0, {"equals": 1}, True),
        (2, {"equals": 1}, False),
        (True, {"equals": True}, True),
        (1, {"equals": True}, True),  # a coil or status word read as 1
        (0, {"equals": True}, False),
        (1.0, {"equals": True}, False),  # a float is not a bit
        ("RUN", {"equals": "RUN"}, True),
        ("1", {"equals": 1}, False),
        (0, {"not_equals": 0}, False),
        (3, {"not_equals": 0}, True),
        (50.0, {"min": 10, "max": 90}, True),
        (5, {"min": 10}, False),
        (95.5, {"max": 90}, False),
        ("hot", {"max": 90}, False),
        (None, {"min": 0}, False),
    ],
)
def test_value_conditions(value, condition, ok) -> None:
    assert (check(value, **condition) is None) is ok


def test_reason_and_fail_state() -> None:
    failure = check(7, equals=0, fail_state=State.DOWN)
    assert failure == Failure(State.DOWN, "x is 7, expected 0", "condition.x")
    assert check(120.0, max=90) == Failure(State.DEGRADED, "x is 120.0, above 90", "condition.x")


def test_empty_condition_always_holds() -> None:
    assert check(object()) is None


def test_must_change_within_uses_the_time_given() -> None:
    checker = ConditionChecker()
    cond = Condition(must_change_within=timedelta(seconds=5))
    assert checker.check("heartbeat", 10, cond, now=100.0) is None  # first sight counts as a change
    assert checker.check("heartbeat", 10, cond, now=105.0) is None  # exactly at the limit
    failure = checker.check("heartbeat", 10, cond, now=112.0)
    assert failure == Failure(
        State.DEGRADED, "heartbeat has not changed for 12 s (limit 5 s)", "condition.heartbeat.stale"
    )
    assert checker.check("heartbeat", 11, cond, now=113.0) is None
    assert checker.check("heartbeat", 11, cond, now=117.0) is None
    assert checker.check("heartbeat", 11, cond, now=118.5) is not None


def test_names_are_tracked_apart_and_forgotten() -> None:
    checker = ConditionChecker()
    cond = Condition(must_change_within=timedelta(seconds=1))
    checker.check("a", 1, cond, now=0.0)
    checker.check("b", 1, cond, now=5.0)
    assert checker.check("a", 1, cond, now=5.0) is not None
    assert checker.check("b", 1, cond, now=5.5) is None
    checker.forget("a")
    assert checker.check("a", 1, cond, now=6.0) is None


def test_combined_conditions_report_every_problem() -> None:
    checker = ConditionChecker()
    cond = Condition(equals=0, must_change_within=timedelta(seconds=1))
    checker.check("fault", 3, cond, now=0.0)
    failure = checker.check("fault", 3, cond, now=10.0)
    assert failure is not None
    assert failure.reason == "fault has not changed for 10 s (limit 1 s); fault is 3, expected 0"


def test_worst_wins_and_reasons_are_ordered() -> None:
    assert worst([]) == Failure(State.UP, "")
    combined = worst([Failure(State.DEGRADED, "slow", "http.slow"), Failure(State.DOWN, "fault 7", "condition.fault")])
    assert combined == Failure(State.DOWN, "fault 7; slow", "condition.fault")


def test_cause_does_not_change_with_the_measurement() -> None:
    checker = ConditionChecker()
    cond = Condition(must_change_within=timedelta(seconds=5))
    checker.check("heartbeat", 1, cond, now=0.0)
    first, later = checker.check("heartbeat", 1, cond, now=41.0), checker.check("heartbeat", 1, cond, now=90.0)
    assert first is not None and later is not None and first.reason != later.reason
    assert first.cause == later.cause == "condition.heartbeat.stale"
    assert code_part("Tank 3/Level") == "tank_3_level"
    assert code_part("db..OK.") == "db.ok" and code_part("..") == "_"


def test_a_source_time_dates_a_new_value_but_never_after_now() -> None:
    checker = ConditionChecker()
    cond = Condition(must_change_within=timedelta(seconds=5))
    assert checker.check("hb", 1, cond, now=100.0, changed_at=90.0) is not None  # changed 10 s ago at the source
    assert checker.check("hb", 2, cond, now=101.0, changed_at=200.0) is None  # a future source time is "now"
    assert checker.check("hb", 2, cond, now=106.5) is not None


@pytest.mark.parametrize(
    ("seconds", "text"), [(45, "45 s"), (119, "119 s"), (720, "12 min"), (30 * 3600, "30 h"), (5 * 86400, "5 d")]
)
def test_format_seconds(seconds, text) -> None:
    assert format_seconds(seconds) == text


block_conditions = st.one_of(
    st.builds(Condition),
    st.builds(Condition, equals=st.sampled_from([0, 1, 1.5, True, "RUN"])),
    st.builds(Condition, not_equals=st.sampled_from([0, 2.0, False])),
    st.builds(Condition, min=st.sampled_from([None, -1.0, 10.0]), max=st.sampled_from([None, 5.0, 90.0])),
    st.builds(Condition, equals=st.just(0), must_change_within=st.just(timedelta(seconds=2))),
    st.builds(Condition, must_change_within=st.sampled_from([timedelta(seconds=2), timedelta(seconds=7)])),
)
block_values = st.one_of(st.integers(-5, 100), st.floats(allow_infinity=True), st.sampled_from([0, 1, 1.0, 1.5]))


@given(st.lists(st.tuples(block_values, block_conditions, st.booleans()), min_size=1, max_size=8),
       st.integers(1, 4))
def test_block_checks_give_the_failures_of_checking_value_by_value(pairs, polls) -> None:
    names = [f"p{i}" for i in range(len(pairs))]
    conditions = [c for _, c, _ in pairs]
    one_by_one, block = ConditionChecker(), ConditionChecker()
    checks = BlockChecks(names, conditions, block, numbers=True)
    for poll in range(polls):  # the same values again (a must_change_within value goes stale) or moving ones
        now = 3.0 * poll
        values = [v + poll // 2 if moves and isinstance(v, int) else v for v, _, moves in pairs]
        expected = [f for n, v, c in zip(names, values, conditions, strict=True)
                    if (f := one_by_one.check(n, v, c, now)) is not None]
        assert checks.check(values, now) == expected


def test_block_checks_fall_back_to_every_value_when_one_fails() -> None:
    conditions = [Condition(max=90.0), Condition(equals=1), Condition(must_change_within=timedelta(seconds=1))]
    checks = BlockChecks(["t", "s", "hb"], conditions, ConditionChecker(), numbers=True)
    assert checks.check([20.0, 1, 5], now=0.0) == []
    failures = checks.check([95.0, 0, 5], now=3.0)
    assert [f.cause for f in failures] == ["condition.t", "condition.s", "condition.hb.stale"]
    bits = BlockChecks(["coil"], [Condition(equals=True)], ConditionChecker(), numbers=False)
    assert bits.check([False], now=0.0)[0].reason == "coil is False, expected True"
