"""Evaluate health conditions on observed values (pure: the time of the observation is passed in)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter, le, ne
from typing import Any

from linewarden.config.targets import Condition
from linewarden.domain import State

_SEVERITY = {State.UP: 0, State.DEGRADED: 1, State.DOWN: 2}


@dataclass(frozen=True)
class Failure:
    """One thing wrong with a target. `cause` is its stable code (docs/probes-and-states.md); `configuration`
    is set (to the cause code it has as one: `config.unknown_node`) when the fault may be the agent config's
    mistake rather than the device's (a node, namespace or register the device does not have)."""

    state: State
    reason: str
    cause: str = ""
    configuration: str = ""


OK = Failure(State.UP, "")


def worst(failures: list[Failure]) -> Failure:
    """The combined failure: the worst state, all reasons (worst first), the cause and configuration code of
    the worst one."""
    if not failures:
        return OK
    ranked = sorted(failures, key=lambda f: -_SEVERITY.get(f.state, 0))
    top = ranked[0]
    return Failure(top.state, "; ".join(f.reason for f in ranked), top.cause, top.configuration)


def code_part(name: str) -> str:
    """A configured name as part of a cause code: lower case, anything but [a-z0-9_.-] as '_', no empty
    dotted segment (a JSON path may have dots)."""
    cleaned = re.sub(r"[^a-z0-9_.-]", "_", name.lower())[:64]
    return ".".join(part for part in cleaned.split(".") if part) or "_"


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

    def check(
        self, name: str, value: object, condition: Condition, now: float, changed_at: float | None = None
    ) -> Failure | None:
        """The failure of `value` against `condition` at time `now` (seconds), or None when it holds.

        `changed_at` dates a new value when the source knows better than `now` when it changed (an OPC UA
        subscription's source timestamp); it is never taken as later than `now`.
        """
        stale = self._stale_problem(name, value, condition, now, changed_at)
        problems = self._value_problems(name, value, condition)
        if not problems and not stale:
            return None
        cause = f"condition.{code_part(name)}" + ("" if problems else ".stale")
        return Failure(condition.fail_state, "; ".join(([stale] if stale else []) + problems), cause)

    def _stale_problem(
        self, name: str, value: object, condition: Condition, now: float, changed_at: float | None
    ) -> str:
        if condition.must_change_within is None:
            return ""
        stale_for = self._stale_for(name, value, now, changed_at)
        window = condition.must_change_within.total_seconds()
        if stale_for > window:
            return f"{name} has not changed for {format_seconds(stale_for)} (limit {format_seconds(window)})"
        return ""

    @staticmethod
    def _value_problems(name: str, value: object, condition: Condition) -> list[str]:
        problems: list[str] = []
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

    def fresh(self, name: str, value: object, now: float, window: float) -> bool:
        """Whether a value whose only condition is `must_change_within` (`window` s) holds at `now`: what `check`
        finds without building its failure, and remembering the value the same way."""
        return self._stale_for(name, value, now, None) <= window

    def _stale_for(self, name: str, value: object, now: float, changed_at: float | None) -> float:
        seen = self._last.get(name)
        if seen is None or not _same(seen[0], value):
            seen = (value, now if changed_at is None else min(changed_at, now))
            self._last[name] = seen
        return max(0.0, now - seen[1])


class BlockChecks:
    """The conditions of values decoded together (one Modbus request), checked for the usual case, where all
    hold, with a few comparisons over the whole block instead of one `ConditionChecker.check` per value.

    `numbers` says the values are ints or floats, never bools or strings (registers). A value takes the fast
    path when its condition has no `must_change_within` and compares with a number. A value whose only
    condition is `must_change_within` (it keeps state) is checked for staleness alone; any other with one is
    checked on its own every time. When any fast comparison fails, every value is checked by
    `ConditionChecker.check`, so failures and their reasons are exactly those of the value-by-value check.
    """

    def __init__(
        self, names: Sequence[str], conditions: Sequence[Condition], checker: ConditionChecker, numbers: bool
    ) -> None:
        self._names = tuple(names)
        self._conditions = tuple(conditions)
        self._checker = checker
        self._checked = tuple(i for i, c in enumerate(conditions) if not c.is_empty)
        fast = [i for i in self._checked if numbers and _fast(conditions[i])]
        slow = sorted(set(self._checked) - set(fast))
        # a heartbeat's condition (must change within a window, nothing else) is checked without a Failure
        self._fresh = tuple((i, conditions[i].must_change_within.total_seconds()) for i in slow  # type: ignore[union-attr]
                            if _staleness_only(conditions[i]))
        self._slow = tuple(i for i in slow if not _staleness_only(conditions[i]))
        eq = [i for i in fast if conditions[i].equals is not None]
        unequal = [i for i in fast if conditions[i].not_equals is not None]
        bounded = [i for i in fast if conditions[i].min is not None or conditions[i].max is not None]
        # values sharing the same bounds are checked with one min() and one max() over them; the others pairwise
        shared: dict[tuple[float, float], list[int]] = {}
        for i in bounded:
            c = conditions[i]
            bounds = (-math.inf if c.min is None else c.min, math.inf if c.max is None else c.max)
            shared.setdefault(bounds, []).append(i)
        single = [(i, bounds) for bounds, members in shared.items() if len(members) == 1 for i in members]
        self._ranges = tuple((_getter(m), low, high) for (low, high), m in shared.items() if len(m) > 1)
        self._low, self._lows = _getter([i for i, _ in single]), tuple(low for _, (low, _) in single)
        self._high, self._highs = self._low, tuple(high for _, (_, high) in single)
        self._eq, self._expected = _getter(eq), tuple(conditions[i].equals for i in eq)
        self._ne, self._unexpected = _getter(unequal), tuple(conditions[i].not_equals for i in unequal)

    def check(self, values: Sequence[object], now: float) -> list[Failure]:
        """The failures of `values` (in the order of `names`) at time `now`, in that order."""
        check, fresh = self._checker.check, self._checker.fresh
        names, conditions = self._names, self._conditions
        if not self._hold(values) or not all(fresh(names[i], values[i], now, window) for i, window in self._fresh):
            indices = self._checked
        else:
            indices = self._slow
        return [f for i in indices if (f := check(names[i], values[i], conditions[i], now)) is not None]

    def _hold(self, values: Sequence[object]) -> bool:
        return (
            self._eq(values) == self._expected
            and all(map(ne, self._ne(values), self._unexpected))
            and all(map(le, self._lows, self._low(values)))
            and all(map(le, self._high(values), self._highs))
            and all(low <= min(got) and max(got) <= high for got, low, high in self._shared(values))
        )

    def _shared(self, values: Sequence[object]) -> Iterator[tuple[tuple[Any, ...], float, float]]:
        return ((get(values), low, high) for get, low, high in self._ranges)


def _fast(condition: Condition) -> bool:
    # a bool expected value has its own matching rules (`_same`): left to the value-by-value check
    return condition.must_change_within is None and not any(
        isinstance(v, bool | str) for v in (condition.equals, condition.not_equals)
    )


def _staleness_only(condition: Condition) -> bool:
    return condition.must_change_within is not None and all(
        v is None for v in (condition.equals, condition.not_equals, condition.min, condition.max)
    )


def _getter(indices: Sequence[int]) -> Callable[[Sequence[object]], tuple[Any, ...]]:
    if not indices:
        return lambda values: ()
    if len(indices) == 1:
        only = indices[0]
        return lambda values: (values[only],)
    return itemgetter(*indices)


def _same(value: object, expected: object) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        # `true` in a config matches a bit read as 1, and 1 matches True; nothing else matches a bool
        return isinstance(value, bool | int) and isinstance(expected, bool | int) and int(value) == int(expected)
    if _is_number(value) and _is_number(expected):
        return float(value) == float(expected)  # type: ignore[arg-type]
    return value == expected
