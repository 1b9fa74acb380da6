"""How the collector's background loops wait: no fixed poll, so an idle collector costs next to nothing.

A loop (ticket dispatch, ticket timers, escalation notices, read-back, the liveness watch) sleeps until the
first of:
- its `Wakeup` is set: this process wrote work for it (a ticket step, a timer, a ticket state, a birth);
- the next due time it read from the store at the end of its round (the earliest due step or lease end, timer,
  notice retry, agent deadline);
- the safety poll: work another collector process wrote and left undone because it died (docs/scale-out.md).
"""

from __future__ import annotations

import asyncio
import contextlib

# The safety poll: how often a loop looks for work in the store when nothing woke it (another collector process
# wrote the work and died before doing it; in one process, every write wakes the loop that does it).
SAFETY_POLL_S = 10.0
# A due row the round did not get done (another collector holds it right now, or the round failed): looked at
# again after this long, as the loops used to poll.
RETRY_S = 1.0


class Wakeup:
    """Set from any thread (the API's workers too); one loop waits on it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def set(self) -> None:
        loop = self._loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            self._event.set()
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
            loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout_s: float, stop: asyncio.Event | None = None) -> None:
        """Until set, `stop` is set or `timeout_s` passed; then ready to be set again. A set that came while
        the loop was busy returns at once, so no wake-up is lost."""
        self._loop = asyncio.get_running_loop()
        if not self._event.is_set() and (stop is None or not stop.is_set()) and timeout_s > 0:
            events = [self._event] if stop is None else [self._event, stop]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(first_of(*events), timeout_s)
        self._event.clear()


def sleep_s(round_ms: int, now_ms: int, due_ms: int | None, poll_s: float) -> float:
    """How long a loop sleeps after a round that started at `round_ms`: until the next due time `due_ms`
    (None: nothing is due), at most `poll_s`. Something due before the round began and still not done is
    looked at again after RETRY_S (at most `poll_s`), not at once."""
    if due_ms is None:
        return poll_s
    if due_ms <= round_ms:
        return min(poll_s, RETRY_S)
    return min(poll_s, max(0.0, (due_ms - now_ms) / 1000))


async def first_of(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
