"""Spacing of reconnect attempts on a connection shared by several targets.

The agent's own lateness must never be counted as the vendor's downtime, so a device that comes back is
noticed at the next poll of any target on it: every poll may try to connect again. What the backoff spares
the device is the burst of attempts when several targets share one connection (one Modbus gateway, one
OPC UA endpoint) and poll at once: after a failed attempt the next one waits `first_delay`, doubling per
failure, capped at `max_delay` and at half the shortest poll interval of the connection's targets. The
delay counts from the start of the failed attempt, so the next poll tick (one interval later, give or take
scheduling jitter below half an interval) always finds an attempt due.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    first_delay: float = 1.0
    max_delay: float = 10.0


class Backoff:
    """Tracks consecutive connect failures; `begin()` says whether another attempt is due and starts it."""

    def __init__(self, policy: BackoffPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self.failures = 0
        self._cap = policy.max_delay
        self._started = 0.0
        self._next_at = 0.0

    def limit_to(self, poll_interval_s: float) -> None:
        """A target polling every `poll_interval_s` uses the connection: attempts may never be spaced wider
        than half of it."""
        self._cap = min(self._cap, poll_interval_s / 2)

    def begin(self) -> bool:
        """True (and the attempt's start noted) when a connect attempt is due now."""
        now = self._clock()
        if now < self._next_at:
            return False
        self._started = now
        return True

    def failed(self) -> None:
        delay = min(self.policy.first_delay * 2 ** min(self.failures, 30), self._cap)
        self.failures += 1
        self._next_at = self._started + delay

    def succeeded(self) -> None:
        self.failures = 0
        self._next_at = 0.0
