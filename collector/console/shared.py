"""One computation for many consoles asking the same thing at once.

Every open console fetches its page's live parts again after a change (console.js), so 50 consoles of one
scope ask for the same overview within a moment of each other. `Shared` computes a value once per key (the
viewer's scope and the store's live version) and hands it to every request that asks while it is at most
`max_age_ms` old; requests that arrive while it is being computed wait for it instead of computing it too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_ENTRIES = 64


class Shared(Generic[T]):
    def __init__(self, clock: Callable[[], int], max_age_ms: int) -> None:
        self._clock = clock
        self._max_age_ms = max_age_ms
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[int, T]] = {}
        self._flights: dict[Hashable, threading.Lock] = {}

    def _fresh(self, key: Hashable) -> tuple[int, T] | None:
        found = self._entries.get(key)
        return found if found is not None and self._clock() - found[0] <= self._max_age_ms else None

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        with self._lock:
            found = self._fresh(key)
            if found is not None:
                return found[1]
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:
            with self._lock:
                found = self._fresh(key)  # made by the request this one waited for
                if found is not None:
                    return found[1]
            made_at = self._clock()
            value = make()
            with self._lock:
                if len(self._entries) >= MAX_ENTRIES:
                    self._entries.clear()
                    self._flights = {k: v for k, v in self._flights.items() if v.locked()}
                self._entries[key] = (made_at, value)
            return value
