"""Per-target, per-minute probe statistics (count, failures, latency p50/p95/max) for `metrics` events."""

from __future__ import annotations

from dataclasses import dataclass, field

from linewarden.domain import State
from linewarden.wire import MetricsBody

MINUTE_MS = 60_000


@dataclass
class _Bucket:
    minute: int
    probes: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)


def _quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of a sorted, non-empty list."""
    index = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


class MetricsAggregator:
    """Feed every probe result; `flush(now_ms)` returns the bodies of every minute that has ended.

    Bodies are only ever returned by `flush`, never by `add`: the agent's housekeeping flushes every second,
    so the minute's bodies of all targets go out in one commit, not one commit per target (each with the whole
    state snapshot) on the first poll of the next minute.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._ended: list[tuple[str, _Bucket]] = []  # closed by a result of a later minute, not flushed yet

    def add(self, target: str, state: State, latency_ms: float | None, at_ms: int) -> None:
        minute = at_ms - at_ms % MINUTE_MS
        bucket = self._buckets.get(target)
        if bucket is None or bucket.minute != minute:
            if bucket is not None:
                self._ended.append((target, bucket))
            bucket = self._buckets[target] = _Bucket(minute)
        bucket.probes += 1
        if state != State.UP:
            bucket.failures += 1
        if latency_ms is not None:
            bucket.latencies.append(latency_ms)

    def flush(self, now_ms: int) -> list[MetricsBody]:
        minute = now_ms - now_ms % MINUTE_MS
        ended, self._ended = self._ended, []
        ended += [(t, b) for t, b in self._buckets.items() if b.minute < minute]
        for target, bucket in ended:
            if self._buckets.get(target) is bucket:
                del self._buckets[target]
        return [self._body(t, b) for t, b in ended]

    @staticmethod
    def _body(target: str, bucket: _Bucket) -> MetricsBody:
        lat = sorted(map(float, bucket.latencies))  # a float on the wire even for a whole-number latency
        return MetricsBody(
            target=target,
            minute=bucket.minute,
            probes=bucket.probes,
            failures=bucket.failures,
            latency_p50_ms=round(_quantile(lat, 0.5), 3) if lat else None,
            latency_p95_ms=round(_quantile(lat, 0.95), 3) if lat else None,
            latency_max_ms=round(lat[-1], 3) if lat else None,
        )
