"""Agent liveness rules, table-driven and with properties."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.liveness import (
    REASON_MISSED,
    REASON_STOPPED,
    Liveness,
    continuous,
    first_evidence,
    last_watched,
    next_check_at,
    overdue,
    overdue_at,
    status,
    trimmed_start,
)
from collector.store.rows import AgentRow, GapRow

T0 = 1_000_000
AGENT = AgentRow(
    site="p1",
    agent="a1",
    epoch="e1",
    boot="b1",
    version="1",
    config_hash="h",
    heartbeat_interval_s=10,
    birth_at=T0,
    birth_received_at=T0,
    last_seen=T0,
    last_heartbeat=None,
    last_heartbeat_received_at=None,
    death_at=None,
    death_reason=None,
    skew_ms=None,
    skew_flagged=False,
)


@pytest.mark.parametrize(
    ("last_hb_received", "now", "since", "expected"),
    [
        (None, T0 + 30_000, 0, False),  # exactly 3 × 10 s after birth: not yet
        (None, T0 + 30_001, 0, True),
        (T0 + 20_000, T0 + 45_000, 0, False),  # the heartbeat restarted the count
        (T0 + 20_000, T0 + 50_001, 0, True),
        (None, T0 + 99_000, T0 + 90_000, False),  # the collector only listens since T0 + 90 s
    ],
)
def test_overdue(last_hb_received, now, since, expected):
    agent = replace(AGENT, last_heartbeat_received_at=last_hb_received)
    assert overdue(agent, now, missed_heartbeats=3, watching_since=since) is expected


@given(st.one_of(st.none(), st.integers(T0, T0 + 10**6)), st.integers(0, T0 + 10**6), st.integers(1, 10))
def test_overdue_at_is_the_first_moment_overdue(last_hb_received, since, missed):
    agent = replace(AGENT, last_heartbeat_received_at=last_hb_received)
    at = overdue_at(agent, missed, since)
    assert not overdue(agent, at - 1, missed, since)
    assert overdue(agent, at, missed, since)


def test_the_next_check_is_the_first_deadline_and_at_most_the_shortest_tolerance_away():
    slow = replace(AGENT, agent="slow", heartbeat_interval_s=60, last_heartbeat_received_at=T0 + 100_000)
    quiet = replace(AGENT, agent="quiet")  # 3 × 10 s after its birth at T0, unless it has gone silent
    now = T0 + 110_000
    assert next_check_at([], set(), now, 3, 0) is None
    assert next_check_at([slow], set(), now, 3, 0) == T0 + 100_000 + 180_000 + 1
    assert next_check_at([slow, quiet], set(), T0 + 1000, 3, 0) == T0 + 30_001
    # Silent already: no deadline of its own, but if it comes back it is due again 30 s after that, at the earliest.
    assert next_check_at([slow, quiet], {("p1", "quiet")}, now, 3, 0) == now + 30_000


def test_last_watched_is_the_measured_heartbeat_else_birth():
    assert last_watched(AGENT) == T0
    assert last_watched(replace(AGENT, last_heartbeat=T0 + 7, last_heartbeat_received_at=T0 + 999)) == T0 + 7


def test_status():
    stopped = GapRow("p1", "a1", T0, None, f"{REASON_STOPPED}: shutdown", "b1")
    missed = GapRow("p1", "a1", T0, None, REASON_MISSED, "b1")
    assert status(AGENT, None, T0 + 1000, 3, 0) is Liveness.ALIVE
    assert status(AGENT, None, T0 + 40_000, 3, 0) is Liveness.SILENT
    assert status(AGENT, missed, T0 + 1000, 3, 0) is Liveness.SILENT
    assert status(AGENT, stopped, T0 + 1000, 3, 0) is Liveness.STOPPED


def test_first_evidence_is_the_earliest_time_after_the_start():
    assert first_evidence(100, [90, 300, 150, 100]) == 150
    assert first_evidence(100, [50, 100]) is None


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([], 0),
        ([10, 20, 30], 30),  # a continuous replay moves the start
        ([10, 50, 60], 10),  # a silence longer than the tolerance stays a gap
        ([10, 20, 200], 20),  # nothing at or past the end counts
    ],
)
def test_trimmed_start(times, expected):
    assert trimmed_start(0, 100, times, tolerance=30) == expected


@given(st.lists(st.integers(min_value=-50, max_value=150)), st.integers(min_value=1, max_value=60))
def test_trimmed_start_stays_inside_the_gap(times, tolerance):
    start = trimmed_start(0, 100, times, tolerance)
    assert 0 <= start < 100
    assert start == 0 or start in times


def test_continuous():
    assert continuous(0, 30, tolerance=30)
    assert not continuous(0, 31, tolerance=30)
