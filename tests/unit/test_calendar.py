"""Calendar arithmetic: weekly hours, overnight shifts, holidays, exceptions, DST in both directions."""

from __future__ import annotations

from datetime import date, datetime, time
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linewarden.calendar import Calendar, resolve_calendar
from linewarden.config.calendar import CalendarSection
from linewarden.config.load import convert
from linewarden.errors import ConfigError
from linewarden.intervals import normalize

H = 3_600_000
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def cal(tz: str = "Europe/Berlin", hours: list[dict[str, Any]] | None = None, **extra: Any) -> Calendar:
    section = convert(
        CalendarSection,
        {"id": "test", "timezone": tz, "hours": hours or [{"days": WEEKDAYS, "start": "08:00", "end": "18:00"}]}
        | extra,
    )
    return Calendar.from_config(section)


def local(tz: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    """ms of a local wall time that exists exactly once."""
    return int(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz)).timestamp() * 1000)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return local("UTC", year, month, day, hour, minute)


BERLIN = "Europe/Berlin"
CHICAGO = "America/Chicago"

business = cal(holidays={"country": "DE"})
night = cal(hours=[{"days": ["sat"], "start": "22:00", "end": "06:00"}])
whole_day = cal(hours=[{"days": ["sun"], "start": "00:00", "end": "00:00"}])


# ---------------------------------------------------------------- weekly hours


def test_business_hours_are_half_open_local_times() -> None:
    monday = date(2026, 6, 8)
    assert not business.is_open(local(BERLIN, 2026, 6, 8, 7, 59))
    assert business.is_open(local(BERLIN, 2026, 6, 8, 8, 0))
    assert business.is_open(local(BERLIN, 2026, 6, 8, 17, 59))
    assert not business.is_open(local(BERLIN, 2026, 6, 8, 18, 0))
    assert business.open_intervals(local(BERLIN, 2026, 6, 8), local(BERLIN, 2026, 6, 9)) == [
        (utc(2026, 6, 8, 6), utc(2026, 6, 8, 16))
    ]
    assert business.local_date(local(BERLIN, 2026, 6, 8, 23, 30)) == monday


def test_week_of_business_hours_is_fifty_hours() -> None:
    assert business.open_ms(local(BERLIN, 2026, 6, 8), local(BERLIN, 2026, 6, 15)) == 50 * H


def test_overnight_shift_runs_into_next_day() -> None:
    shift = cal(hours=[{"days": ["fri"], "start": "22:00", "end": "06:00"}])
    fri, sat = (2026, 6, 12), (2026, 6, 13)
    assert shift.open_intervals(local(BERLIN, *fri), local(BERLIN, 2026, 6, 14)) == [
        (local(BERLIN, *fri, 22), local(BERLIN, *sat, 6))
    ]
    assert shift.is_open(local(BERLIN, *sat, 5, 59))
    assert not shift.is_open(local(BERLIN, *sat, 6))
    # asked from inside the shift: the part from the day before counts
    assert shift.open_ms(local(BERLIN, *sat, 3), local(BERLIN, *sat, 12)) == 3 * H


def test_shift_ending_at_midnight() -> None:
    late = cal(hours=[{"days": ["mon"], "start": "14:00", "end": "24:00"}])
    assert late.open_ms(local(BERLIN, 2026, 6, 8), local(BERLIN, 2026, 6, 10)) == 10 * H


def test_always_calendar() -> None:
    always = Calendar.always()
    assert always.id == "24x7" and always.tz == "UTC"
    assert always.open_intervals(5, 10) == [(5, 10)]
    assert always.open_intervals(10, 10) == []
    assert always.add_open_time(100, 7) == 107
    # business days of a 24x7 calendar are calendar days, at the same local wall time across DST
    berlin = Calendar.always(BERLIN)
    assert berlin.add_business_days(local(BERLIN, 2026, 3, 28, 9), 2) == local(BERLIN, 2026, 3, 30, 9)


# ---------------------------------------------------------------- DST


@pytest.mark.parametrize(
    ("tz", "saturday", "hours"),
    [
        (BERLIN, (2026, 3, 28), 7),  # clocks go forward on Sunday 29 March
        (BERLIN, (2026, 10, 24), 9),  # clocks go back on Sunday 25 October
        (CHICAGO, (2026, 3, 7), 7),  # 8 March
        (CHICAGO, (2026, 10, 31), 9),  # 1 November
        (BERLIN, (2026, 6, 13), 8),
    ],
)
def test_night_shift_length_follows_the_clocks(tz: str, saturday: tuple[int, int, int], hours: int) -> None:
    shift = cal(tz, hours=[{"days": ["sat"], "start": "22:00", "end": "06:00"}])
    start = local(tz, *saturday)
    intervals = shift.open_intervals(start, start + 3 * 24 * H)
    assert len(intervals) == 1
    assert intervals[0][1] - intervals[0][0] == hours * H


@pytest.mark.parametrize(
    ("tz", "sunday", "hours"),
    [
        (BERLIN, (2026, 3, 29), 23),
        (BERLIN, (2026, 10, 25), 25),
        (CHICAGO, (2026, 3, 8), 23),
        (CHICAGO, (2026, 11, 1), 25),
    ],
)
def test_whole_day_on_dst_sundays(tz: str, sunday: tuple[int, int, int], hours: int) -> None:
    day = cal(tz, hours=[{"days": ["sun"], "start": "00:00", "end": "00:00"}])
    start = local(tz, *sunday) - 24 * H
    assert day.open_ms(start, start + 4 * 24 * H) == hours * H


def test_nonexistent_local_time_moves_to_the_jump() -> None:
    # 02:30 does not exist in Berlin on 29 March 2026: the clock jumps from 02:00 CET (01:00 UTC) to 03:00 CEST.
    early = cal(hours=[{"days": ["sun"], "start": "02:30", "end": "05:00"}])
    assert early.local_ms(date(2026, 3, 29), time(2, 30)) == utc(2026, 3, 29, 1)
    start = utc(2026, 3, 28)
    assert early.open_intervals(start, start + 2 * 24 * H) == [(utc(2026, 3, 29, 1), utc(2026, 3, 29, 3))]
    # a span entirely inside the gap is empty that day
    gap = cal(hours=[{"days": ["sun"], "start": "02:10", "end": "02:50"}])
    assert gap.open_ms(start, start + 2 * 24 * H) == 0
    assert gap.open_ms(start + 7 * 24 * H, start + 9 * 24 * H) == 40 * 60_000


def test_ambiguous_local_time_is_its_first_occurrence() -> None:
    # 02:30 happens twice in Berlin on 25 October 2026: first at 00:30 UTC (CEST), then at 01:30 UTC (CET).
    early = cal(hours=[{"days": ["sun"], "start": "02:30", "end": "04:00"}])
    start = utc(2026, 10, 24)
    assert early.open_intervals(start, start + 2 * 24 * H) == [(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 3))]


def test_chicago_weekday_hours_keep_local_time_across_dst() -> None:
    shifts = cal(CHICAGO, hours=[{"days": ["mon"], "start": "06:00", "end": "14:00"}])
    before, after = shifts.open_intervals(utc(2026, 3, 2), utc(2026, 3, 10))
    assert before == (utc(2026, 3, 2, 12), utc(2026, 3, 2, 20))  # CST, UTC-6
    assert after == (utc(2026, 3, 9, 11), utc(2026, 3, 9, 19))  # CDT, UTC-5


# ---------------------------------------------------------------- holidays and exceptions


def test_country_holiday_is_closed() -> None:
    # 1 May 2026 (Friday) is Labour Day in Germany
    assert not business.is_open(local(BERLIN, 2026, 5, 1, 10))
    assert business.is_open(local(BERLIN, 2026, 4, 30, 10))
    plain = cal()
    assert plain.is_open(local(BERLIN, 2026, 5, 1, 10))


def test_subdivision_holidays() -> None:
    bavaria = cal(holidays={"country": "DE", "subdivision": "BY"})
    epiphany = local(BERLIN, 2026, 1, 6, 10)  # Tuesday, a holiday in Bavaria only
    assert not bavaria.is_open(epiphany)
    assert business.is_open(epiphany)


def test_holidays_in_other_years_are_found() -> None:
    # Christmas Day 2030 is a Wednesday
    assert not business.is_open(local(BERLIN, 2030, 12, 25, 10))
    assert business.is_open(local(BERLIN, 2030, 12, 27, 10))


def test_listed_holiday_closes_whole_day_including_overnight_tail() -> None:
    shift = cal(hours=[{"days": WEEKDAYS, "start": "22:00", "end": "06:00"}], holidays={"dates": [date(2026, 6, 10)]})
    tue, wed, thu = (2026, 6, 9), (2026, 6, 10), (2026, 6, 11)
    assert shift.open_intervals(local(BERLIN, *tue, 12), local(BERLIN, *thu, 12)) == [
        (local(BERLIN, *tue, 22), local(BERLIN, *wed))
    ]


def test_exceptions_close_or_replace_hours() -> None:
    special = cal(
        holidays={"country": "DE"},
        exceptions=[
            {"date": date(2026, 6, 8), "closed": True},
            {"date": date(2026, 6, 9), "start": "10:00", "end": "12:00"},
            {"date": date(2026, 5, 1), "start": "09:00", "end": "11:00", "reason": "open on Labour Day"},
        ],
    )
    assert special.open_ms(local(BERLIN, 2026, 6, 8), local(BERLIN, 2026, 6, 9)) == 0
    assert special.open_intervals(local(BERLIN, 2026, 6, 9), local(BERLIN, 2026, 6, 10)) == [
        (local(BERLIN, 2026, 6, 9, 10), local(BERLIN, 2026, 6, 9, 12))
    ]
    assert special.open_ms(local(BERLIN, 2026, 5, 1), local(BERLIN, 2026, 5, 2)) == 2 * H


def test_exception_with_hours_keeps_tail_of_previous_night() -> None:
    shift = cal(
        hours=[{"days": ["mon"], "start": "22:00", "end": "06:00"}],
        exceptions=[{"date": date(2026, 6, 9), "start": "10:00", "end": "11:00"}],
    )
    assert shift.open_ms(local(BERLIN, 2026, 6, 8), local(BERLIN, 2026, 6, 10)) == 9 * H


# ---------------------------------------------------------------- deadlines


def test_add_open_time_skips_nights_and_weekends() -> None:
    friday_5pm = local(BERLIN, 2026, 6, 12, 17)
    assert business.add_open_time(friday_5pm, 2 * H) == local(BERLIN, 2026, 6, 15, 9)
    # exactly reaching the end of an open span stops there, not at the next opening
    assert business.add_open_time(friday_5pm, 1 * H) == local(BERLIN, 2026, 6, 12, 18)
    assert business.add_open_time(friday_5pm, 0) == friday_5pm
    with pytest.raises(ValueError):
        business.add_open_time(friday_5pm, -1)


def test_add_open_time_across_holidays() -> None:
    # Thursday 30 April 2026 17:00 + 4 h: 1 h on Thursday, Friday 1 May is closed, weekend → Monday 11:00
    assert business.add_open_time(local(BERLIN, 2026, 4, 30, 17), 4 * H) == local(BERLIN, 2026, 5, 4, 11)


def test_add_business_days() -> None:
    thursday = local(BERLIN, 2026, 4, 30, 10, 15)
    assert business.add_business_days(thursday, 0) == thursday
    assert business.add_business_days(thursday, 1) == local(BERLIN, 2026, 5, 4, 10, 15)
    assert business.add_business_days(thursday, 5) == local(BERLIN, 2026, 5, 8, 10, 15)
    # from a Saturday evening, the first business day is Monday
    assert business.add_business_days(local(BERLIN, 2026, 6, 13, 20), 1) == local(BERLIN, 2026, 6, 15, 20)
    # across the spring DST change the local wall time is kept
    assert business.add_business_days(local(BERLIN, 2026, 3, 27, 9), 1) == local(BERLIN, 2026, 3, 30, 9)
    with pytest.raises(ValueError):
        business.add_business_days(thursday, -1)


# ---------------------------------------------------------------- registry


def test_resolve_calendar() -> None:
    registry = {"business-hours-de": business}
    assert resolve_calendar("business-hours-de", registry, "UTC") is business
    always = resolve_calendar("24x7", registry, CHICAGO)
    assert always.tz == CHICAGO and always.is_open(0)
    with pytest.raises(ConfigError, match="business-hours-de"):
        resolve_calendar("nope", registry, "UTC")


def test_always_from_config() -> None:
    section = convert(CalendarSection, {"id": "round-the-clock", "timezone": BERLIN, "always": True})
    always = Calendar.from_config(section)
    assert always.id == "round-the-clock"
    assert always.open_ms(0, 10 * H) == 10 * H


def test_year_of_intervals_is_normal_and_consistent() -> None:
    start, end = local(BERLIN, 2026, 1, 1), local(BERLIN, 2027, 1, 1)
    intervals = business.open_intervals(start, end)
    assert intervals == normalize(intervals)
    # 2026: 261 weekdays; 7 German national holidays fall on one (3 October and 26 December are Saturdays)
    assert len(intervals) == 261 - 7
    assert business.open_ms(start, end) == (261 - 7) * 10 * H


# ---------------------------------------------------------------- properties

YEAR_2026 = st.integers(min_value=utc(2026, 1, 1), max_value=utc(2027, 1, 1))
CALENDARS = st.sampled_from(
    [business, night, whole_day, cal(CHICAGO, hours=[{"days": ["sat", "sun"], "start": "22:00", "end": "02:30"}])]
)


@settings(max_examples=60, deadline=None)
@given(CALENDARS, YEAR_2026, YEAR_2026, YEAR_2026)
def test_open_ms_is_additive_and_bounded(calendar: Calendar, a: int, b: int, c: int) -> None:
    a, b, c = sorted((a, b, c))
    assert calendar.open_ms(a, c) == calendar.open_ms(a, b) + calendar.open_ms(b, c)
    assert 0 <= calendar.open_ms(a, c) <= c - a


@settings(max_examples=60, deadline=None)
@given(CALENDARS, YEAR_2026, st.integers(min_value=0, max_value=200 * H))
def test_add_open_time_inverts_open_ms(calendar: Calendar, start: int, duration: int) -> None:
    end = calendar.add_open_time(start, duration)
    assert calendar.open_ms(start, end) == duration
    # earliest such instant: one ms earlier is not enough
    if duration > 0:
        assert calendar.open_ms(start, end - 1) == duration - 1


@settings(max_examples=60, deadline=None)
@given(CALENDARS, YEAR_2026, st.integers(min_value=1, max_value=5 * 24 * H))
def test_is_open_agrees_with_intervals(calendar: Calendar, start: int, length: int) -> None:
    intervals = calendar.open_intervals(start, start + length)
    assert intervals == normalize(intervals)
    for s, e in intervals:
        assert calendar.is_open(s) and calendar.is_open(e - 1)
        assert start <= s < e <= start + length
    gaps = [(e, s) for (_, e), (s, _) in pairwise(intervals)]
    for s, _ in gaps:
        assert not calendar.is_open(s)
