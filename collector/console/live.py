"""Live updates by server-sent events: one watcher per console reads a cheap version of the store every
`every_s`; when it changes, it reads the assets' states once and hands the same message to every open
console. Each browser gets a short JSON message and updates the page in place."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from collector.console.queries import current_assets, live_version
from collector.store.base import Store

log = logging.getLogger(__name__)


class Hub:
    def __init__(self, store: Store, every_s: float = 0.5) -> None:
        self._store = store
        self._every_s = every_s
        self._subscribers: set[asyncio.Queue[str | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self.last: str | None = None

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def message(self, version: tuple[Any, ...]) -> str:
        assets = {f"{a.site}/{a.agent}/{a.asset}": [a.state, a.reason] for a in current_assets(self._store)}
        return json.dumps({"v": repr(version[:-1]), "seen": version[-1], "assets": assets}, separators=(",", ":"))

    def subscribe(self) -> asyncio.Queue[str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=8)
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(), name="console-live")
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
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
        while self._subscribers:
            try:
                version = await asyncio.to_thread(live_version, self._store)
                if version != seen:
                    seen = version
                    self.last = await asyncio.to_thread(self.message, version)
                    for queue in list(self._subscribers):
                        _offer(queue, self.last)
            except Exception:
                log.exception("console live update failed; trying again")
            await asyncio.sleep(self._every_s)


def _offer(queue: asyncio.Queue[str | None], message: str | None) -> None:
    """A console that does not keep up loses its oldest message, never blocks the others."""
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(message)


async def stream(hub: Hub, disconnected: Callable[[], Any], keepalive_s: float = 15.0) -> Any:
    """The SSE body of one console: each change as it comes (the first at once); ends when the hub stops."""
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
            yield f"event: state\ndata: {message}\n\n"
    finally:
        hub.unsubscribe(queue)
