"""Capped exponential backoff between reconnect attempts, so a dead device or gateway is not hammered.

The cap is also how late the agent may notice a device that came back, and that lateness is counted as
the vendor's downtime: 10 s keeps it small against an outage while one connect attempt every 10 s is
nothing a PLC or gateway notices.
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
    """Tracks consecutive connect failures; `ready()` says whether another attempt is due."""

    def __init__(self, policy: BackoffPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self.failures = 0
        self._next_at = 0.0

    def ready(self) -> bool:
        return self._clock() >= self._next_at

    def failed(self) -> None:
        delay = min(self.policy.first_delay * 2**self.failures, self.policy.max_delay)
        self.failures += 1
        self._next_at = self._clock() + delay

    def succeeded(self) -> None:
        self.failures = 0
        self._next_at = 0.0
