"""Exact arithmetic on half-open time intervals [start, end) in integer milliseconds.

An interval list is "normal" when sorted, non-overlapping, non-adjacent and free of empty intervals;
every function here returns normal lists and accepts any list.
"""

from __future__ import annotations

from collections.abc import Iterable

Interval = tuple[int, int]


def normalize(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for start, end in sorted(intervals):  # empty ones are skipped here: sorting first keeps the same order
        if end <= start:
            continue
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def union(*lists: Iterable[Interval]) -> list[Interval]:
    return normalize(i for lst in lists for i in lst)


def intersect(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    left, right = normalize(a), normalize(b)
    out: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i][0], right[j][0])
        end = min(left[i][1], right[j][1])
        if start < end:
            out.append((start, end))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    """Parts of `a` not covered by `b`."""
    out: list[Interval] = []
    cut = normalize(b)
    for start, end in normalize(a):
        cur = start
        for c_start, c_end in cut:
            if c_end <= cur:
                continue
            if c_start >= end:
                break
            if c_start > cur:
                out.append((cur, c_start))
            cur = max(cur, c_end)
            if cur >= end:
                break
        if cur < end:
            out.append((cur, end))
    return out


def clip(intervals: Iterable[Interval], start: int, end: int) -> list[Interval]:
    return intersect(intervals, [(start, end)])


def total(intervals: Iterable[Interval]) -> int:
    return sum(e - s for s, e in normalize(intervals))


def contains(intervals: Iterable[Interval], at: int) -> bool:
    return any(s <= at < e for s, e in intervals)
