"""Debouncing: thresholds, transition dating, DOWN/DEGRADED mixes, start-up, persistence."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from linewarden.debounce import Debouncer, Pending, Transition
from linewarden.domain import State
from linewarden.errors import LinewardenError

U, G, D, X = State.UP, State.DEGRADED, State.DOWN, State.UNKNOWN
BAD = {D, G}


def feed(deb: Debouncer, states: list[State], start: int = 0) -> list[tuple[int, Transition]]:
    """Feed results 1 s apart; returns (index of the confirming result, transition)."""
    out = []
    for i, state in enumerate(states):
        tr = deb.observe(state, (start + i) * 1000, f"r{start + i}")
        if tr is not None:
            out.append((start + i, tr))
    return out


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        # start-up: UP needs recover_threshold (2), bad and UNKNOWN need fail_threshold (3)
        ([U, U], [(1, X, U, 0)]),
        ([U], []),
        ([D, D, D], [(2, X, D, 0)]),
        ([D, D], []),
        # a run dated at its first result
        ([U, U, D, D, D, U, U], [(1, X, U, 0), (4, U, D, 2000), (6, D, U, 5000)]),
        # an interrupted run does not count
        ([U, U, D, D, U, D, D, U], [(1, X, U, 0)]),
        # UP results during DOWN reset a recovery run
        ([D, D, D, U, D, U, U], [(2, X, D, 0), (6, D, U, 5000)]),
        # a DOWN/DEGRADED mix leaves UP, as the worst state in the run
        ([U, U, G, D, G], [(1, X, U, 0), (4, U, D, 2000)]),
        ([U, U, G, G, G], [(1, X, U, 0), (4, U, G, 2000)]),
        # switching DOWN -> DEGRADED needs a full run of DEGRADED; a DOWN in between restarts it
        ([D, D, D, G, G, D, G, G, G], [(2, X, D, 0), (8, D, G, 6000)]),
        # probe errors: UNKNOWN is a state of its own, reached with fail_threshold
        ([U, U, X, X, D, X, X, X], [(1, X, U, 0), (7, U, X, 5000)]),
        # UNKNOWN results interrupt a bad run
        ([U, U, D, X, D, D], [(1, X, U, 0)]),
    ],
)
def test_sequences(results: list[State], expected: list[tuple[int, State, State, int]]) -> None:
    got = feed(Debouncer(3, 2), results)
    assert [(i, tr.from_, tr.to, tr.at_ms) for i, tr in got] == expected


def test_transition_reason_is_that_of_first_result_with_the_state() -> None:
    deb = Debouncer(3, 1)
    deb.observe(U, 0, "ok")
    deb.observe(G, 1, "slow")
    deb.observe(D, 2, "refused")
    tr = deb.observe(D, 3, "refused again")
    assert tr == Transition(U, D, 1, "refused")


def test_pending_and_failing() -> None:
    deb = Debouncer(3, 2)
    feed(deb, [U, U])
    assert deb.pending is None and not deb.failing
    deb.observe(D, 10_000, "timeout")
    assert deb.pending == Pending(D, 1, 10_000, "timeout") and deb.failing
    deb.observe(U, 11_000, "ok")
    assert deb.pending is None and not deb.failing
    deb.observe(G, 12_000, "slow")
    assert deb.pending is not None and deb.pending.state == G and not deb.failing


def test_threshold_one_switches_at_once() -> None:
    deb = Debouncer(1, 1)
    assert deb.observe(D, 5, "x") == Transition(X, D, 5, "x")
    assert deb.observe(U, 6, "y") == Transition(D, U, 6, "y")


def test_invalid_thresholds() -> None:
    with pytest.raises(ValueError):
        Debouncer(0, 2)


def test_snapshot_restore_continues_the_run() -> None:
    deb = Debouncer(3, 2)
    feed(deb, [U, U, D, D])
    copy = Debouncer(3, 2)
    copy.restore(deb.snapshot())
    assert copy.state == U and copy.pending == deb.pending
    assert copy.observe(D, 99_000, "third") == Transition(U, D, 2000, "r2")


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"state": "SIDEWAYS", "pending": None},
        {"state": "UP", "pending": {"state": "DOWN"}},
        {"state": "UP", "pending": {"state": "UP", "count": 1, "since_ms": 0, "reason": ""}},
        {"state": "UP", "pending": {"state": "DOWN", "count": 0, "since_ms": 0, "reason": ""}},
    ],
)
def test_bad_snapshot_rejected_without_change(bad: dict[str, object]) -> None:
    deb = Debouncer(3, 2)
    feed(deb, [U, U])
    with pytest.raises(LinewardenError):
        deb.restore(bad)
    assert deb.state == U and deb.pending is None


def _class(state: State) -> str:
    return "bad" if state in BAD else state.value


@settings(max_examples=400, deadline=None)
@example([D, G, G, G], 2, 1)  # a DOWN run ending in DEGRADED, then a DEGRADED run
@given(
    st.lists(st.sampled_from([U, G, D, X]), max_size=60),
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=1, max_value=4),
)
def test_transitions_follow_full_runs(results: list[State], fail: int, recover: int) -> None:
    deb = Debouncer(fail, recover)
    state = X
    confirmed_at = -1  # index of the result that confirmed the previous transition: its run is used up
    for i, result in enumerate(results):
        tr = deb.observe(result, i * 1000, str(i))
        if tr is None:
            assert deb.state == state
            continue
        first = tr.at_ms // 1000
        run = results[first : i + 1]
        threshold = recover if tr.to == U else fail
        # exactly `threshold` results, none equal to the old state, all of one class, dated at the first
        assert tr.from_ == state and tr.to != state
        assert len(run) == threshold
        assert all(r != state and _class(r) == _class(tr.to) for r in run)
        assert (
            first - 1 <= confirmed_at or results[first - 1] == state or _class(results[first - 1]) != _class(tr.to)
        )
        assert tr.to == (D if D in run else run[0])
        state, confirmed_at = tr.to, i
    assert deb.state == state


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([U, G, D, X]), st.integers(min_value=1, max_value=5), st.integers(min_value=1, max_value=5))
def test_steady_results_confirm_after_threshold(result: State, fail: int, recover: int) -> None:
    deb = Debouncer(fail, recover)
    if result == X:
        feed(deb, [U] * recover)
    threshold = recover if result == U else fail
    transitions = feed(deb, [result] * (threshold + 3), start=100)
    assert [(i - 100, tr.to) for i, tr in transitions] == [(threshold - 1, result)]
