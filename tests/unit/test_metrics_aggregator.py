"""Per-minute probe statistics: a minute's bodies come out of `flush` only, all targets together."""

from __future__ import annotations

from agent.metrics import MINUTE_MS, MetricsAggregator
from linewarden.domain import State


def test_a_result_of_the_next_minute_closes_the_bucket_but_flush_returns_it() -> None:
    agg = MetricsAggregator()
    agg.add("a", State.UP, 2.0, 1_000)
    agg.add("a", State.DOWN, 4.0, 2_000)
    agg.add("b", State.UP, None, 1_500)
    agg.add("a", State.UP, 8.0, MINUTE_MS + 10)  # closes minute 0 of "a"; its body comes from flush
    bodies = agg.flush(MINUTE_MS + 20)
    assert sorted((b.target, b.minute, b.probes, b.failures, b.latency_max_ms) for b in bodies) == [
        ("a", 0, 2, 1, 4.0),
        ("b", 0, 1, 0, None),
    ]
    assert agg.flush(MINUTE_MS + 30) == []  # each body once; minute 1 is still open
    assert [(b.target, b.minute, b.probes) for b in agg.flush(2 * MINUTE_MS)] == [("a", MINUTE_MS, 1)]


def test_a_late_flush_returns_every_ended_minute_oldest_first() -> None:
    agg = MetricsAggregator()
    agg.add("a", State.UP, 1.0, 0)
    agg.add("a", State.UP, 1.0, MINUTE_MS)
    assert [(b.minute, b.probes) for b in agg.flush(3 * MINUTE_MS)] == [(0, 1), (MINUTE_MS, 1)]
