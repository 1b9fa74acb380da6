"""The Modbus request planner: exact request counts for register maps, and optimality against brute force."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linewarden.modbus_plan import Limits, Span, plan_reads


def spans(*points: tuple[int, int], unit: int = 1, table: str = "holding") -> list[Span]:
    return [Span(f"p{a}", unit, table, a, w) for a, w in points]  # type: ignore[arg-type]


def shape(requests) -> list[tuple[int, int]]:
    return [(r.address, r.count) for r in requests]


def test_simulator_map_is_one_request() -> None:
    # heartbeat, status, fault, int32, float32, int16: holes of 7 registers at most
    points = spans((0, 1), (1, 1), (2, 1), (10, 2), (12, 2), (14, 1))
    assert shape(plan_reads(points, Limits(max_gap=10))) == [(0, 15)]


def test_no_gap_filling_reads_consecutive_runs_only() -> None:
    points = spans((1, 1), (2, 1), (3, 1), (5, 1), (6, 1), (10, 1), (11, 1), (12, 1), (14, 1))
    assert shape(plan_reads(points, Limits(max_gap=0))) == [(1, 3), (5, 2), (10, 3), (14, 1)]


def test_gap_just_over_the_limit_splits() -> None:
    points = spans((0, 1), (11, 1), (23, 1))  # holes of 10 and 11
    assert shape(plan_reads(points, Limits(max_gap=10))) == [(0, 12), (23, 1)]


def test_125_register_cap_and_32bit_values_kept_whole() -> None:
    points = spans(*[(a, 2) for a in range(0, 250, 2)])  # 125 float32 values, 250 registers
    requests = plan_reads(points, Limits())
    assert shape(requests) == [(0, 124), (124, 124), (248, 2)]
    assert all(r.count <= 125 for r in requests)


def test_device_cap_lowers_the_request_size() -> None:
    points = spans(*[(a, 1) for a in range(100)])
    assert len(plan_reads(points, Limits(max_registers=16))) == 7  # 6 × 16 + 4


def test_bits_go_up_to_2000_per_request() -> None:
    points = spans(*[(a, 1) for a in range(0, 4001, 100)], table="coil")  # 0..4000, holes of 99
    assert shape(plan_reads(points, Limits(max_gap=100))) == [(0, 1901), (2000, 1901), (4000, 1)]
    assert len(plan_reads(points, Limits(max_gap=100, max_bits=500))) == 9


def test_units_and_tables_never_share_a_request() -> None:
    points = spans((0, 1), unit=1) + spans((1, 1), unit=2) + spans((2, 1), unit=1, table="input")
    requests = plan_reads(points, Limits(max_gap=50))
    assert sorted((r.unit, r.table, r.address, r.count) for r in requests) == [
        (1, "holding", 0, 1),
        (1, "input", 2, 1),
        (2, "holding", 1, 1),
    ]


def test_overlapping_points_share_registers() -> None:
    points = [Span("as_int32", 1, "holding", 10, 2), Span("high_word", 1, "holding", 10, 1)]
    requests = plan_reads(points, Limits())
    assert shape(requests) == [(10, 2)]
    assert [requests[0].slice_of(s) for s in points] == [slice(0, 2), slice(0, 1)]


def test_point_wider_than_the_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="more than 1 per request"):
        plan_reads(spans((0, 2)), Limits(max_registers=1))


def _fewest_requests(points: list[Span], limits: Limits) -> int:
    """Brute force: the fewest contiguous groups of the sorted points that each form a valid request."""
    ordered = sorted(points, key=lambda s: (s.address, -s.width))
    cap = limits.cap("holding")

    @cache
    def best(i: int) -> int:
        if i == len(ordered):
            return 0
        result = len(ordered)
        start, end = ordered[i].address, ordered[i].end
        for j in range(i, len(ordered)):
            if j > i:
                if ordered[j].address - end > limits.max_gap:
                    break
                end = max(end, ordered[j].end)
            if end - start > cap:
                break
            result = min(result, 1 + best(j + 1))
        return result

    return best(0)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 400), st.sampled_from([1, 2])), min_size=1, max_size=25),
    st.integers(0, 60),
    st.integers(2, 125),
)
def test_plan_is_valid_and_minimal(raw: list[tuple[int, int]], max_gap: int, cap: int) -> None:
    points = [Span(f"p{i}", 1, "holding", a, w) for i, (a, w) in enumerate(raw)]
    limits = Limits(max_registers=cap, max_gap=max_gap)
    requests = plan_reads(points, limits)
    assert len(requests) == _fewest_requests(points, limits)
    assert sorted(s.name for r in requests for s in r.spans) == sorted(p.name for p in points)
    for r in requests:
        assert r.count <= cap
        for s in r.spans:
            assert r.address <= s.address and s.end <= r.address + r.count
