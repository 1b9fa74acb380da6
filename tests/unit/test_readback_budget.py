"""The read-back's request budget and Retry-After parsing, under an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.ticketing.readback_http import DEFAULT_RETRY_AFTER_S, Budget, retry_after_s


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        (None, DEFAULT_RETRY_AFTER_S),
        ("soon", DEFAULT_RETRY_AFTER_S),
        ("-3", DEFAULT_RETRY_AFTER_S),
        (format_datetime(datetime(2026, 5, 28, 6, 0, 30, tzinfo=UTC), usegmt=True), 30.0),
        (format_datetime(datetime(2026, 5, 28, 5, 0, 0, tzinfo=UTC), usegmt=True), 0.0),  # in the past
    ],
)
def test_retry_after_is_delta_seconds_or_an_http_date(header: str | None, wait: float) -> None:
    now = datetime(2026, 5, 28, 6, 0, 0, tzinfo=UTC).timestamp()
    assert retry_after_s(header, now) == pytest.approx(wait)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 600), st.integers(1, 1500))
async def test_no_minute_holds_more_requests_than_the_budget(per_minute: int, requests: int) -> None:
    clock = FakeTime()
    budget = Budget(per_minute, monotonic=clock.monotonic, sleep=clock.sleep)
    times = []
    for _ in range(requests):
        await budget.take()
        times.append(clock.now)
    # Sliding window: any `per_minute + 1` consecutive requests span at least a minute (up to float rounding).
    for i in range(per_minute, len(times)):
        assert times[i] - times[i - per_minute] >= 60 - 1e-6
    # And the budget is used: each full window of requests waits one minute, no more.
    assert clock.now == pytest.approx(((requests - 1) // per_minute) * 60.0)
