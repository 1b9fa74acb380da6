"""What the heartbeat's outbox figures cost the agent: read from an outbox of N unacknowledged events.

    .venv/bin/python bench/outbox_figures.py [--events N] [--rounds R]      (default 100,000 and 2,000)

Fills an agent outbox (SQLite, the agent's own settings) with N metrics events, then times, R rounds each:
- `Outbox.stats()`: what the heartbeat reads (the depth the outbox counts in memory, and the `ts` of the row
  with the lowest seq, one primary-key read);
- the naive alternative: `SELECT COUNT(*), MIN(ts)` over the events (a scan of an index);
- the baseline: appending one heartbeat to the same outbox, its own transaction (`synchronous=FULL`), which
  every heartbeat pays anyway.
It checks that both reads give the same figures.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.outbox import Outbox  # noqa: E402
from linewarden.config.agent import OutboxConfig  # noqa: E402
from linewarden.domain import State  # noqa: E402
from linewarden.wire import HeartbeatBody, MetricsBody  # noqa: E402

T0 = time.time_ns() // 1_000_000  # recent: events older than the outbox's max_age would be dropped


def _per_call_us(fn: Callable[[], object], rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - started) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outbox.db"
        box = Outbox(path, OutboxConfig(max_events=10 * args.events))
        body = MetricsBody(target="plc-line3-gateway", minute=T0, probes=12, failures=0, latency_p95_ms=8.9)
        for start in range(0, args.events, 1000):
            box.append_many([("metrics", body, T0 + i) for i in range(start, min(start + 1000, args.events))])
        raw = sqlite3.connect(path)

        def naive() -> tuple[int, int]:
            count, oldest = raw.execute("SELECT COUNT(*), MIN(ts) FROM events").fetchone()
            return int(count), int(oldest)

        stats = box.stats()
        assert (stats.depth, stats.oldest_ts) == naive() == (args.events, T0), (stats, naive())
        heartbeat = HeartbeatBody(interval_s=60, states={"plc": State.UP}, outbox_depth=stats.depth,
                                  oldest_unacked_at=stats.oldest_ts)
        figures_us = _per_call_us(box.stats, args.rounds)
        naive_us = _per_call_us(naive, max(1, args.rounds // 10))
        append_us = _per_call_us(lambda: box.append("heartbeat", heartbeat, T0), max(1, args.rounds // 10))
        raw.close()
        box.close()
    print(f"outbox of {args.events:,} unacknowledged events")
    print(f"  Outbox.stats() (the heartbeat's figures):   {figures_us:9.1f} µs per heartbeat")
    print(f"  SELECT COUNT(*), MIN(ts) (naive):           {naive_us:9.1f} µs")
    print(f"  baseline: appending the heartbeat (FULL):   {append_us:9.1f} µs")
    print(f"  figures / baseline: {figures_us / append_us:.3f}; naive / baseline: {naive_us / append_us:.2f}")


if __name__ == "__main__":
    main()
