"""Calendars as exact interval arithmetic: when is a production line running, when does a support clock run.

Rules (docs/figures.md), all in the calendar's IANA zone:

- Weekly hours are local wall-clock spans that *start* on their weekday. `end <= start` runs into the next
  day; `00:00-00:00` is the whole day (local midnight to the next local midnight). A span's length follows
  the clocks: 22:00-06:00 on the night the clocks go back is 9 h, on the night they go forward 7 h.
- A local time is the earliest instant at which the local clock shows that time or later. For a time that
  exists twice (clocks go back) that is its first occurrence; for a time that does not exist (clocks go
  forward) it is the instant of the jump, so 02:30 on a spring-forward night in Berlin is 03:00 CEST.
- A holiday (from the `holidays` package by country/subdivision, or listed by date) is closed for the
  whole local day: no span starts on it, and an overnight span from the day before stops at midnight.
- An exception date overrides both the weekly hours and the holidays of its date: `closed` closes the whole
  day like a holiday; start/end replace the spans that start on that day (the tail of an overnight span from
  the day before still runs into it).
- A business day (for `add_business_days`) is a local date on which at least one open span starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from linewarden.config.calendar import WEEKDAYS, CalendarException, CalendarSection, Holidays, WeeklyHours
from linewarden.errors import ConfigError, LinewardenError
from linewarden.intervals import Interval, clip, normalize, subtract, total

ALWAYS_ID = "24x7"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_DAY = timedelta(days=1)
_WEEK_MS = 7 * 86_400_000
# Every loop that walks forward looking for open time stops after this many years.
_SEARCH_YEARS = 10

_Span = tuple[time, time]


def _to_ms(dt: datetime) -> int:
    return (dt - _EPOCH) // _MS


def _from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


class Calendar:
    """Open/closed time of one named calendar. Build with `from_config` or `always`; times are int ms UTC."""

    def __init__(
        self,
        id: str,
        tz: str,
        *,
        hours: Sequence[WeeklyHours] = (),
        holidays: Holidays | None = None,
        exceptions: Sequence[CalendarException] = (),
        always: bool = False,
    ) -> None:
        self.id = id
        self.tz = tz
        self.always_open = always
        self._zone = ZoneInfo(tz)
        self._weekly: dict[int, list[_Span]] = {day: [] for day in range(7)}
        for h in hours:
            for day in h.days:
                self._weekly[WEEKDAYS.index(day)].append((h.start, h.end))
        self._country = holidays.country if holidays else None
        self._subdivision = holidays.subdivision if holidays else None
        self._holiday_dates = frozenset(holidays.dates) if holidays else frozenset()
        self._exceptions = {e.date: e for e in exceptions}
        self._holidays_by_year: dict[int, frozenset[date]] = {}
        # Per local date: the open spans starting on it and, for a day closed whole, that day (both in ms).
        # A calendar does not change once built, so each date is worked out once (reports ask for the same
        # days for every incident and uptime line).
        self._days_ms: dict[date, tuple[list[Interval], Interval | None]] = {}

    @classmethod
    def from_config(cls, section: CalendarSection) -> Calendar:
        return cls(
            section.id,
            section.timezone,
            hours=section.hours,
            holidays=section.holidays,
            exceptions=section.exceptions,
            always=section.always,
        )

    @classmethod
    def always(cls, tz: str = "UTC", id: str = ALWAYS_ID) -> Calendar:
        return cls(id, tz, always=True)

    def __repr__(self) -> str:
        return f"Calendar(id={self.id!r}, tz={self.tz!r})"

    # ------------------------------------------------------------ queries

    def is_open(self, at_ms: int) -> bool:
        return bool(self.open_intervals(at_ms, at_ms + 1))

    def open_intervals(self, start_ms: int, end_ms: int) -> list[Interval]:
        """The open parts of [start_ms, end_ms) as a normal interval list."""
        if end_ms <= start_ms:
            return []
        if self.always_open:
            return [(start_ms, end_ms)]
        opened: list[Interval] = []
        closed: list[Interval] = []
        # Spans starting the day before can run into the first day; none reaches two days on.
        day = self.local_date(start_ms) - _DAY
        last = self.local_date(end_ms - 1)
        while day <= last:
            spans, closed_all_day = self._day_ms(day)
            opened.extend(spans)
            if closed_all_day is not None:
                closed.append(closed_all_day)
            day += _DAY
        return clip(subtract(normalize(opened), closed), start_ms, end_ms)

    def open_ms(self, start_ms: int, end_ms: int) -> int:
        return total(self.open_intervals(start_ms, end_ms))

    def add_open_time(self, start_ms: int, duration_ms: int) -> int:
        """The earliest instant t with open_ms(start_ms, t) == duration_ms (start_ms itself for 0)."""
        if duration_ms < 0:
            raise ValueError(f"negative duration: {duration_ms} ms")
        if duration_ms == 0 or self.always_open:
            return start_ms + duration_ms
        remaining = duration_ms
        window = start_ms
        for _ in range(_SEARCH_YEARS * 53):
            for s, e in self.open_intervals(window, window + _WEEK_MS):
                if remaining <= e - s:
                    return s + remaining
                remaining -= e - s
            window += _WEEK_MS
        raise LinewardenError(f"calendar {self.id!r} is not open long enough within {_SEARCH_YEARS} years")

    def add_business_days(self, start_ms: int, days: int) -> int:
        """Same local wall time on the `days`-th business day after the local date of start_ms.

        0 days returns start_ms. The wall time goes through `local_ms`, so a deadline that falls into a
        spring-forward gap moves to the jump.
        """
        if days < 0:
            raise ValueError(f"negative number of business days: {days}")
        if days == 0:
            return start_ms
        local = _from_ms(start_ms).astimezone(self._zone)
        day = local.date()
        found = 0
        for _ in range(days + _SEARCH_YEARS * 366):
            day += _DAY
            if self.always_open or self._day(day)[0]:
                found += 1
                if found == days:
                    return self.local_ms(day, local.time())
        raise LinewardenError(f"calendar {self.id!r} has fewer than {days} business days in {_SEARCH_YEARS} years")

    # ------------------------------------------------------------ local time

    def local_date(self, at_ms: int) -> date:
        return _from_ms(at_ms).astimezone(self._zone).date()

    def local_ms(self, day: date, wall: time) -> int:
        """The earliest instant at which the local clock shows `day wall` or later (see module doc)."""
        naive = datetime.combine(day, wall.replace(tzinfo=None, fold=0))
        after = _to_ms(naive.replace(tzinfo=self._zone))  # fold=0: first occurrence, or past a gap
        if self._wall(after) == naive:
            return after
        # Nonexistent time: fold=1 maps it before the jump; the jump lies in (before, after].
        before = _to_ms(naive.replace(tzinfo=self._zone, fold=1))
        while after - before > 1:
            mid = (before + after) // 2
            if self._wall(mid) >= naive:
                after = mid
            else:
                before = mid
        return after

    def _wall(self, at_ms: int) -> datetime:
        return _from_ms(at_ms).astimezone(self._zone).replace(tzinfo=None)

    # ------------------------------------------------------------ days

    def _day(self, day: date) -> tuple[list[_Span], bool]:
        """(spans starting on `day`, whether the whole local day is closed)."""
        exception = self._exceptions.get(day)
        if exception is not None:
            if exception.closed or exception.start is None or exception.end is None:
                return [], True
            return [(exception.start, exception.end)], False
        if self._is_holiday(day):
            return [], True
        return self._weekly[day.weekday()], False

    def _day_ms(self, day: date) -> tuple[list[Interval], Interval | None]:
        """`_day` in ms: (open spans starting on `day`, the whole day when it is closed), worked out once."""
        found = self._days_ms.get(day)
        if found is None:
            spans, closed_all_day = self._day(day)
            whole = (self.local_ms(day, time(0)), self.local_ms(day + _DAY, time(0))) if closed_all_day else None
            found = self._days_ms[day] = ([self._span_ms(day, span) for span in spans], whole)
        return found

    def _span_ms(self, day: date, span: _Span) -> Interval:
        start, end = span
        end_day = day if end > start else day + _DAY
        return self.local_ms(day, start), self.local_ms(end_day, end)

    def _is_holiday(self, day: date) -> bool:
        if day in self._holiday_dates:
            return True
        if self._country is None:
            return False
        year = self._holidays_by_year.get(day.year)
        if year is None:
            import holidays as holidays_package  # ~2 MB; loaded only for a calendar with public holidays

            found = holidays_package.country_holidays(self._country, subdiv=self._subdivision, years=day.year)
            year = frozenset(found.keys())
            self._holidays_by_year[day.year] = year
        return day in year


def resolve_calendar(name: str, calendars: Mapping[str, Calendar], tz: str) -> Calendar:
    """The calendar called `name`; "24x7" is always open in `tz` unless a calendar is registered under it."""
    found = calendars.get(name)
    if found is not None:
        return found
    if name == ALWAYS_ID:
        return Calendar.always(tz)
    raise ConfigError("calendars", name, f"no such calendar; known: {_names(calendars)}")


def _names(calendars: Iterable[str]) -> str:
    return ", ".join(sorted({ALWAYS_ID, *calendars}))
