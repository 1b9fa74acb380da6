"""Reporting periods: calendar months in the contract's time zone, as half-open [start, end) in ms.

A month starts at local midnight of its first day, so March in Europe/Berlin is 743 hours long
(the DST change loses one) and October 745.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from linewarden.timeutil import dt_to_ms, ms_to_dt

_LABEL = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Period:
    label: str
    start_ms: int
    end_ms: int

    @property
    def length_ms(self) -> int:
        return self.end_ms - self.start_ms


def month(year: int, month_no: int, timezone: str) -> Period:
    zone = ZoneInfo(timezone)
    start = datetime(year, month_no, 1, tzinfo=zone)
    nxt = datetime(year + month_no // 12, month_no % 12 + 1, 1, tzinfo=zone)
    return Period(f"{year:04d}-{month_no:02d}", dt_to_ms(start), dt_to_ms(nxt))


def parse_month(label: str, timezone: str) -> Period:
    """'2026-03' → March 2026 in `timezone`. Raises ValueError on any other text."""
    m = _LABEL.match(label.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"not a month: {label!r} (use YYYY-MM, e.g. '2026-03')")
    return month(int(m.group(1)), int(m.group(2)), timezone)


def report_as_of(period: Period, now_ms: int | None) -> int:
    """What a report of `period` is computed as of when no as_of is asked for: the report time, `now_ms`.
    While the period is not over that makes a partial period; once it is over, clocks and RCA deadlines of
    its incidents count everything known by now (an acknowledgement in the next month's first hour counts).
    `now_ms` None (a pure caller with no clock): the period's end."""
    return period.end_ms if now_ms is None else now_ms


def month_containing(at_ms: int, timezone: str) -> Period:
    local = ms_to_dt(at_ms).astimezone(ZoneInfo(timezone))
    return month(local.year, local.month, timezone)
