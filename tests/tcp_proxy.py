"""A TCP forwarder for fault tests: `stop()` closes every connection through it and refuses new ones until
`start()` again, which is what a client sees of its server restarting (PostgreSQL in the tests and the bench).

`TcpProxy` runs on the caller's event loop; `ThreadedTcpProxy` on a loop of its own, for a caller that blocks its
event loop in a synchronous database driver (a store in the test's process, or the fault bench's reads)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any

from simulators.broker import free_port


class TcpProxy:
    """A TCP forwarder in front of PostgreSQL: `stop()` then `start()` is what the collector sees of a
    database server restart."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


class ThreadedTcpProxy:
    """A TcpProxy served by an event loop in a thread of its own; `start()`/`stop()` block until done."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._proxy = TcpProxy(upstream)
        self.port = self._proxy.port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._thread.start()

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def start(self) -> None:
        self._run(self._proxy.start())

    def stop(self) -> None:
        self._run(self._proxy.stop())

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
