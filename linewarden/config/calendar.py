"""Calendar configuration: weekly hours in an IANA zone, holidays by country or date, exceptions.

One file holds one calendar. A production calendar says when lines run; a coverage calendar says
when a support tier's clock runs. `always = true` is a 24x7 calendar.
"""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from linewarden.config.base import ConfigId, StrictModel, TimeZoneName

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _to_time(value: object) -> object:
    """Accept TOML local times (06:00:00) and also 'HH:MM' strings; '24:00' is midnight at the end."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("a time of day is written 06:00:00 (or '06:00'), not a number")
    if isinstance(value, str):
        if value.strip() == "24:00":
            return time(0, 0)
        try:
            return time.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not a time of day: {value!r} (use 06:00:00 or '06:00')") from None
    return value


TimeOfDay = Annotated[time, BeforeValidator(_to_time)]


class WeeklyHours(StrictModel):
    """Open from `start` to `end` on each of `days`. `end` ≤ `start` runs past midnight into the next day."""

    days: list[Weekday] = Field(min_length=1)
    start: TimeOfDay
    end: TimeOfDay

    @model_validator(mode="after")
    def _not_empty(self) -> WeeklyHours:
        if self.start == self.end and self.start != time(0, 0):
            raise ValueError("start and end are equal: use 00:00:00 to 00:00:00 for a whole day")
        return self


class Holidays(StrictModel):
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 code, e.g. 'DE'")
    subdivision: str | None = Field(default=None, description="region code, e.g. 'BY' for Bavaria")
    dates: list[date] = Field(default_factory=list)

    @model_validator(mode="after")
    def _country_known(self) -> Holidays:
        if self.country is None:
            if self.subdivision is not None:
                raise ValueError("'subdivision' needs 'country'")
            return self
        import holidays as hol

        try:
            hol.country_holidays(self.country, subdiv=self.subdivision, years=2026)
        except NotImplementedError:
            raise ValueError(f"the holidays package does not know country {self.country!r}") from None
        except Exception as exc:  # the package raises plain exceptions for unknown subdivisions
            raise ValueError(str(exc)) from None
        return self


class CalendarException(StrictModel):
    """One date that differs from the weekly pattern: closed, or open during the given hours only."""

    date: date
    closed: bool = False
    start: TimeOfDay | None = None
    end: TimeOfDay | None = None
    reason: str = ""

    @model_validator(mode="after")
    def _shape(self) -> CalendarException:
        has_hours = self.start is not None or self.end is not None
        if self.closed and has_hours:
            raise ValueError("an exception is either closed or has start/end, not both")
        if not self.closed and (self.start is None or self.end is None):
            raise ValueError("give closed = true, or both start and end")
        return self


class CalendarSection(StrictModel):
    id: ConfigId
    timezone: TimeZoneName
    description: str = ""
    always: bool = False
    hours: list[WeeklyHours] = Field(default_factory=list)
    holidays: Holidays = Holidays()
    exceptions: list[CalendarException] = Field(default_factory=list)

    @model_validator(mode="after")
    def _hours_or_always(self) -> CalendarSection:
        if self.always and self.hours:
            raise ValueError("'always = true' (24x7) and 'hours' exclude each other")
        if not self.always and not self.hours:
            raise ValueError("give weekly 'hours', or 'always = true' for 24x7")
        return self


class CalendarConfig(StrictModel):
    calendar: CalendarSection
