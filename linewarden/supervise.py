"""Supervision of long-running asyncio tasks, shared by the agent and the collector.

Rules:
- A supervised task that raises is logged with its traceback, counted (per task name), and started again
  after a backoff that doubles from `first_wait_s` up to `max_wait_s` (the wait is always bounded).
- More than `max_crashes` crashes of one task within `window_s` is a fault that restarting will not mend:
  the supervisor gives up, `failed()` raises `SupervisorGaveUp`, and the process exits non-zero so its
  service manager (systemd, or the Windows scheduled task the installer sets up) starts it afresh.
- A task that returns has finished (its owner asked it to stop); it is not restarted. Cancellation is not a
  crash: cancelling the supervisor's task cancels the supervised coroutine and ends supervision.

Like `linewarden.mqtt`, this is an asyncio helper rather than pure logic; time comes from the injected clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from linewarden.errors import LinewardenError

log = logging.getLogger(__name__)


class SupervisorGaveUp(LinewardenError):
    """A supervised task kept crashing: the process must exit and be restarted by its service manager."""


@dataclass(frozen=True)
class RestartPolicy:
    first_wait_s: float = 0.5
    max_wait_s: float = 30.0
    max_crashes: int = 5
    window_s: float = 300.0

    def wait_s(self, recent_crashes: int) -> float:
        """Backoff before the restart that follows the `recent_crashes`-th crash in the window (1-based)."""
        return min(self.max_wait_s, self.first_wait_s * 2.0 ** max(0, recent_crashes - 1))


class Supervisor:
    """Starts tasks and keeps them running. `crashes` counts every crash by task name, for status output."""

    def __init__(
        self, policy: RestartPolicy | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy or RestartPolicy()
        self._clock = clock
        self.crashes: dict[str, int] = defaultdict(int)
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._gave_up: asyncio.Future[None] | None = None

    def spawn(self, name: str, run: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run `run()` as a supervised task named `name`; `run` is called again for every restart."""
        return asyncio.create_task(self._supervise(name, run), name=name)

    async def failed(self) -> None:
        """Wait until the supervisor gives up on a task; then raise SupervisorGaveUp."""
        await self._gave_up_future()

    @property
    def total_crashes(self) -> int:
        return sum(self.crashes.values())

    def _gave_up_future(self) -> asyncio.Future[None]:
        if self._gave_up is None:
            self._gave_up = asyncio.get_running_loop().create_future()
        return self._gave_up

    async def _supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        gave_up = self._gave_up_future()
        while not gave_up.done():
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                wait = self._crashed(name, exc)
            if wait is None:
                return
            await asyncio.sleep(wait)

    def _crashed(self, name: str, exc: Exception) -> float | None:
        """Count the crash; return the wait before restarting, or None when giving up."""
        now = self._clock()
        self.crashes[name] += 1
        recent = self._recent[name]
        recent.append(now)
        while recent and recent[0] < now - self.policy.window_s:
            recent.popleft()
        if len(recent) > self.policy.max_crashes:
            log.critical(
                "task %s crashed %d times within %gs; giving up", name, len(recent), self.policy.window_s,
                exc_info=exc,
            )
            gave_up = self._gave_up_future()
            if not gave_up.done():
                gave_up.set_exception(
                    SupervisorGaveUp(f"task {name} crashed {len(recent)} times within {self.policy.window_s:g}s: {exc}")
                )
            return None
        wait = self.policy.wait_s(len(recent))
        log.error("task %s crashed (crash %d); restarting in %.1fs", name, self.crashes[name], wait, exc_info=exc)
        return wait
