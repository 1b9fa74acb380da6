"""Uptime math: table cases and hypothesis properties on sla.states + sla.uptime."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from linewarden.domain import State
from linewarden.intervals import intersect
from linewarden.sla.models import AssetTimeline, Segment
from linewarden.sla.states import asset_states
from linewarden.sla.uptime import GapPolicy, Measure, measure

H = 3_600_000
END = 100 * H
STATES = [State.UP, State.DOWN, State.DEGRADED, State.UNKNOWN]

segment = st.builds(
    lambda a, b, s: Segment(min(a, b), max(a, b) + 1, s),
    st.integers(0, END - 1),
    st.integers(0, END - 1),
    st.sampled_from(STATES),
)
intervals = st.lists(
    st.tuples(st.integers(0, END), st.integers(1, 20 * H)).map(lambda t: (t[0], t[0] + t[1])), max_size=4
)
policies = st.sampled_from(["exclude", "up", "down"])
weights = st.sampled_from([Decimal(0), Decimal("0.25"), Decimal(1)])


def run(segments, gaps, windows, policy: GapPolicy, weight, start=0, end=END) -> Measure:
    states = asset_states(AssetTimeline("a", tuple(segments)), gaps, start, end)
    return measure(states, [(start, end)], windows, policy, weight)


def test_down_and_degraded_with_weight() -> None:
    segs = [Segment(0, 90 * H, State.UP), Segment(90 * H, 91 * H, State.DOWN), Segment(91 * H, END, State.DEGRADED)]
    m = run(segs, [], [], "exclude", Decimal("0.5"))
    assert (m.down_ms, m.degraded_ms, m.downtime_ms) == (H, 9 * H, Decimal(H) + Decimal("4.5") * H)
    assert m.uptime == 100 * (100 - Decimal("5.5")) / 100


def test_worst_observation_wins_and_gaps_override() -> None:
    segs = [Segment(0, END, State.UP), Segment(10 * H, 20 * H, State.DOWN)]
    m = run(segs, [(15 * H, 30 * H)], [], "down", Decimal(0))
    assert m.down_ms == 5 * H + 15 * H and m.gap_ms == 15 * H and m.excluded_ms == 0


def test_nothing_counted_has_no_uptime() -> None:
    m = run([Segment(0, END, State.DOWN)], [], [(0, END)], "exclude", Decimal(0))
    assert m.counted_ms == 0 and m.observed_ms == 0 and m.uptime is None and m.observed_share is None


@given(policies)
def test_nothing_observed_has_no_uptime_whatever_the_gap_policy(policy: GapPolicy) -> None:
    m = run([], [(0, 10 * H)], [], policy, Decimal(0))
    assert m.gap_ms == END and m.observed_ms == 0 and m.uptime is None and m.observed_share == 0


def test_observed_share_leaves_maintenance_out() -> None:
    # 100 h covered: 20 h timely maintenance (unobserved inside too), 8 h of gaps outside it, 72 h seen.
    segs = [Segment(20 * H, 60 * H, State.UP), Segment(68 * H, END, State.UP)]
    m = run(segs, [], [(0, 20 * H)], "exclude", Decimal(0))
    assert (m.maintenance_ms, m.gap_ms, m.observed_ms) == (20 * H, 8 * H, 72 * H)
    assert m.observed_share == Fraction(72 * 100, 80) and m.uptime == 100


def test_overlapping_windows_exclude_once() -> None:
    m = run([Segment(0, END, State.UP)], [], [(0, 2 * H), (H, 3 * H)], "exclude", Decimal(0))
    assert m.maintenance_ms == 3 * H


@given(st.lists(segment, max_size=6), intervals, intervals, policies, weights)
def test_uptime_between_0_and_100_or_none_when_nothing_was_observed(segs, gaps, windows, policy, weight) -> None:
    m = run(segs, gaps, windows, policy, weight)
    assert (m.uptime is None) == (m.observed_ms == 0)
    assert m.uptime is None or 0 <= m.uptime <= 100


@given(
    st.lists(segment, max_size=6), intervals, intervals, policies, weights, st.integers(0, END - 1), st.integers(1, END)
)
def test_more_downtime_never_raises_uptime(segs, gaps, windows, policy, weight, at, length) -> None:
    before = run(segs, gaps, windows, policy, weight).uptime
    after = run([*segs, Segment(at, min(END, at + length), State.DOWN)], gaps, windows, policy, weight).uptime
    assert before is None or (after is not None and after <= before)


@given(st.lists(segment, max_size=6), intervals, intervals, policies, weights, intervals)
def test_excluding_down_time_never_lowers_uptime(segs, gaps, windows, policy, weight, more) -> None:
    # Excluding *up* time can lower the ratio (the downtime is then a larger share), so the property
    # holds for excluding time that was down: what a timely window does to an outage.
    down = asset_states(AssetTimeline("a", tuple(segs)), gaps, 0, END)[State.DOWN]
    before = run(segs, gaps, windows, policy, weight).uptime
    after = run(segs, gaps, windows + intersect(more, down), policy, weight).uptime
    assert after is None or (before is not None and after >= before)


def test_excluding_up_time_can_lower_uptime() -> None:
    segs = [Segment(0, 50 * H, State.UP), Segment(50 * H, END, State.DOWN)]
    less = run(segs, [], [(0, 10 * H)], "exclude", Decimal(0)).uptime
    more = run(segs, [], [], "exclude", Decimal(0)).uptime
    assert less is not None and more is not None and less < more


@given(st.lists(segment, max_size=6), intervals, intervals, policies, weights, st.integers(0, END))
def test_split_and_merge_give_the_same_totals(segs, gaps, windows, policy, weight, cut) -> None:
    whole = run(segs, gaps, windows, policy, weight)
    parts = run(segs, gaps, windows, policy, weight, 0, cut) + run(segs, gaps, windows, policy, weight, cut, END)
    assert parts == whole
