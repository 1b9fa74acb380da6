"""Serving the API with uvicorn inside the collector's event loop (the collector owns the signals)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from linewarden.errors import LinewardenError


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class ApiServer:
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self._server = _QuietServer(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout_s: float = 10.0) -> int:
        """Start serving; return the port bound (the free one picked for port 0)."""
        self._task = asyncio.create_task(self._server.serve(), name="collector-api")
        try:
            async with asyncio.timeout(timeout_s):
                while not self._server.started:
                    if self._task.done():
                        break
                    await asyncio.sleep(0.02)
        except TimeoutError:
            pass
        if not self._server.started:
            await self.stop()
            raise LinewardenError("the API server did not start (is the port in use?)")
        port: int = self._server.servers[0].sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception, SystemExit):
            await self._task
        self._task = None
