"""Evaluate health conditions on observed values (pure: the time of the observation is passed in)."""

from __future__ import annotations

from dataclasses import dataclass

from linewarden.config.targets import Condition
from linewarden.domain import State

_SEVERITY = {State.UP: 0, State.DEGRADED: 1, State.DOWN: 2}


@dataclass(frozen=True)
class Failure:
    state: State
    reason: str


def worst(failures: list[Failure]) -> tuple[State, str]:
    """The combined state of several failures (the worst wins) and all their reasons, worst first."""
    if not failures:
        return State.UP, ""
    ranked = sorted(failures, key=lambda f: -_SEVERITY.get(f.state, 0))
    return ranked[0].state, "; ".join(f.reason for f in ranked)


def format_seconds(seconds: float) -> str:
    """Ages for humans: '45 s', '12 min', '30 h', '3 d'."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class ConditionChecker:
    """Checks conditions for one target; remembers when each named value last changed (for must_change_within).

    A value seen for the first time counts as changed at that moment, so a freshly started agent does not
    call a heartbeat stale before it has watched it for the whole window.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[object, float]] = {}

    def forget(self, name: str) -> None:
        self._last.pop(name, None)

    def check(self, name: str, value: object, condition: Condition, now: float) -> Failure | None:
        """The failure of `value` against `condition` at time `now` (seconds), or None when it holds."""
        problems = self._problems(name, value, condition, now)
        return Failure(condition.fail_state, "; ".join(problems)) if problems else None

    def _problems(self, name: str, value: object, condition: Condition, now: float) -> list[str]:
        problems: list[str] = []
        if condition.must_change_within is not None:
            stale_for = self._stale_for(name, value, now)
            window = condition.must_change_within.total_seconds()
            if stale_for > window:
                problems.append(
                    f"{name} has not changed for {format_seconds(stale_for)} (limit {format_seconds(window)})"
                )
        if condition.equals is not None and not _same(value, condition.equals):
            problems.append(f"{name} is {value!r}, expected {condition.equals!r}")
        if condition.not_equals is not None and _same(value, condition.not_equals):
            problems.append(f"{name} is {value!r}")
        if condition.min is not None or condition.max is not None:
            if not _is_number(value):
                problems.append(f"{name} is {value!r}, not a number")
            else:
                number = float(value)  # type: ignore[arg-type]
                if condition.min is not None and number < condition.min:
                    problems.append(f"{name} is {value!r}, below {condition.min:g}")
                if condition.max is not None and number > condition.max:
                    problems.append(f"{name} is {value!r}, above {condition.max:g}")
        return problems

    def _stale_for(self, name: str, value: object, now: float) -> float:
        seen = self._last.get(name)
        if seen is None or not _same(seen[0], value):
            self._last[name] = (value, now)
            return 0.0
        return now - seen[1]


def _same(value: object, expected: object) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        # `true` in a config matches a bit read as 1, and 1 matches True; nothing else matches a bool
        return isinstance(value, bool | int) and isinstance(expected, bool | int) and int(value) == int(expected)
    if _is_number(value) and _is_number(expected):
        return float(value) == float(expected)  # type: ignore[arg-type]
    return value == expected
