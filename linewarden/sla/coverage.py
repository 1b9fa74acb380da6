"""The calendar interface the SLA engine needs. It is structural: `linewarden.calendar.Calendar`
satisfies it, and so may any test double."""

from __future__ import annotations

from typing import Protocol


class CoverageCalendar(Protocol):
    def is_open(self, at_ms: int) -> bool: ...

    def open_intervals(self, start_ms: int, end_ms: int) -> list[tuple[int, int]]: ...

    def open_ms(self, start_ms: int, end_ms: int) -> int: ...

    def add_open_time(self, start_ms: int, duration_ms: int) -> int: ...

    def add_business_days(self, start_ms: int, days: int) -> int: ...
