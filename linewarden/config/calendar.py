"""Calendar configuration: weekly hours in an IANA zone, holidays by country or date, exceptions.

One file holds one calendar. A production calendar says when lines run; a coverage calendar says
when a support tier's clock runs. `always = true` is a 24x7 calendar.
"""

from __future__ import annotations

from datetime import date, time
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from msgspec import Meta, field

from linewarden.config.base import ConfigId, StrictStruct, check_zone_field

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def to_time(value: object) -> time:
    """Accept TOML local times (06:00:00) and also 'HH:MM' strings; '24:00' is midnight at the end."""
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        if value.strip() == "24:00":
            return time(0, 0)
        try:
            return time.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not a time of day: {value!r} (use 06:00:00 or '06:00')") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("a time of day is written 06:00:00 (or '06:00'), not a number")
    raise ValueError("a time of day is written 06:00:00 (or '06:00')")


if TYPE_CHECKING:
    TimeOfDay = time
else:

    class TimeOfDay(time):
        """A time of day (base.dec_hook parses it)."""

        json_schema: ClassVar[dict[str, Any]] = {"type": "string", "examples": ["06:00:00", "22:00"]}

        @classmethod
        def parse(cls, value: Any) -> TimeOfDay:
            t = to_time(value)
            return cls(t.hour, t.minute, t.second, t.microsecond, t.tzinfo, fold=t.fold)


class WeeklyHours(StrictStruct, frozen=True):
    """Open from `start` to `end` on each of `days`. `end` ≤ `start` runs past midnight into the next day."""

    days: Annotated[list[Weekday], Meta(min_length=1)]
    start: TimeOfDay
    end: TimeOfDay

    def __post_init__(self) -> None:
        if self.start == self.end and self.start != time(0, 0):
            raise ValueError("start and end are equal: use 00:00:00 to 00:00:00 for a whole day")


class Holidays(StrictStruct, frozen=True):
    country: Annotated[str, Meta(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 code, e.g. 'DE'")] | None = None
    subdivision: str | None = None  # region code, e.g. 'BY' for Bavaria
    dates: list[date] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.country is None:
            if self.subdivision is not None:
                raise ValueError("'subdivision' needs 'country'")
            return
        import holidays as hol

        try:
            hol.country_holidays(self.country, subdiv=self.subdivision, years=2026)
        except NotImplementedError:
            raise ValueError(f"the holidays package does not know country {self.country!r}") from None
        except Exception as exc:  # the package raises plain exceptions for unknown subdivisions
            raise ValueError(str(exc)) from None


class CalendarException(StrictStruct, frozen=True):
    """One date that differs from the weekly pattern: closed, or open during the given hours only."""

    date: date
    closed: bool = False
    start: TimeOfDay | None = None
    end: TimeOfDay | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        has_hours = self.start is not None or self.end is not None
        if self.closed and has_hours:
            raise ValueError("an exception is either closed or has start/end, not both")
        if not self.closed and (self.start is None or self.end is None):
            raise ValueError("give closed = true, or both start and end")


class CalendarSection(StrictStruct, frozen=True):
    id: ConfigId
    timezone: str  # an IANA name such as 'Europe/Berlin'
    description: str = ""
    always: bool = False
    hours: list[WeeklyHours] = field(default_factory=list)
    holidays: Holidays = Holidays()
    exceptions: list[CalendarException] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_zone_field("timezone", self.timezone)
        if self.always and self.hours:
            raise ValueError("'always = true' (24x7) and 'hours' exclude each other")
        if not self.always and not self.hours:
            raise ValueError("give weekly 'hours', or 'always = true' for 24x7")


class CalendarConfig(StrictStruct, frozen=True):
    calendar: CalendarSection
