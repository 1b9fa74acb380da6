"""Live updates by server-sent events: one watcher per console reads a cheap version of the store every
`every_s`; when it changes, it reads the assets' states once and hands the same snapshot to every open
console. Each browser gets a short JSON message, of the assets its user may see, and updates the page in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from collector.console.queries import AssetNow, current_assets, live_version
from collector.store.base import Store

log = logging.getLogger(__name__)

Visible = Callable[[AssetNow], bool]
"""Which assets a console's user may see (None: all)."""


@dataclass
class Snapshot:
    version: tuple[Any, ...]
    assets: list[AssetNow]
    _shared: str | None = field(default=None, repr=False)

    def encode(self, visible: Visible | None) -> str:
        if visible is None and self._shared is not None:
            return self._shared
        assets = {f"{a.site}/{a.agent}/{a.asset}": [a.state, a.reason] for a in self.assets
                  if visible is None or visible(a)}
        text = json.dumps({"v": repr(self.version[:-1]), "seen": self.version[-1], "assets": assets},
                          separators=(",", ":"))
        if visible is None:
            self._shared = text
        return text


class Hub:
    def __init__(self, store: Store, every_s: float = 0.5) -> None:
        self._store = store
        self._every_s = every_s
        self._subscribers: set[asyncio.Queue[Snapshot | None]] = set()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self) -> asyncio.Queue[Snapshot | None]:
        queue: asyncio.Queue[Snapshot | None] = asyncio.Queue(maxsize=8)
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(), name="console-live")
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Snapshot | None]) -> None:
        self._subscribers.discard(queue)

    async def stop(self) -> None:
        """End every open stream (so the server can stop) and the watcher."""
        for queue in list(self._subscribers):
            _offer(queue, None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        seen: tuple[Any, ...] | None = None
        last: Snapshot | None = None
        fresh: set[asyncio.Queue[Snapshot | None]] = set()
        while self._subscribers:
            try:
                version = await asyncio.to_thread(live_version, self._store)
                if version != seen:
                    seen = version
                    last = Snapshot(version, await asyncio.to_thread(current_assets, self._store))
                    fresh = set()
                fresh &= self._subscribers
                for queue in self._subscribers - fresh:  # each new console gets the latest snapshot at once
                    if last is not None:
                        _offer(queue, last)
                        fresh.add(queue)
            except Exception:
                log.exception("console live update failed; trying again")
            await asyncio.sleep(self._every_s)


def _offer(queue: asyncio.Queue[Snapshot | None], message: Snapshot | None) -> None:
    """A console that does not keep up loses its oldest message, never blocks the others."""
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(message)


async def stream(
    hub: Hub, visible: Visible | None, disconnected: Callable[[], Awaitable[bool]], keepalive_s: float = 15.0
) -> AsyncIterator[str]:
    """The SSE body of one console: each change as it comes (the latest at once); ends when the hub stops."""
    queue = hub.subscribe()
    try:
        yield "retry: 3000\n\n"
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), keepalive_s)
            except TimeoutError:
                if await disconnected():
                    return
                yield ": keepalive\n\n"
                continue
            if message is None:
                return
            yield f"event: state\ndata: {message.encode(visible)}\n\n"
    finally:
        hub.unsubscribe(queue)
