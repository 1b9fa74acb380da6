"""Serving the API with uvicorn inside the collector's event loop (the collector owns the signals).

With a certificate and key it serves HTTPS and reloads them when either file changes: the server keeps
its SSL context, and a new chain loaded into it serves every handshake from then on. X-Forwarded-For and
X-Forwarded-Proto are believed only from the addresses in `trusted_proxies` (none: never).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Generator, Sequence
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from linewarden.errors import LinewardenError

log = logging.getLogger(__name__)


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers (the collector owns the signals), and without its ten wake-ups a
    second to see whether it should stop (most of an idle collector's CPU): `exit` tells it, and it wakes once
    a second, for the Date header."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def exit(self) -> None:
        self.should_exit = True
        self._exit.set()

    async def main_loop(self) -> None:
        while not await self.on_tick(0):  # tick 0 of ten: the once-a-second work (headers), then the exit check
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), 1.0)


SHUTDOWN_GRACE_S = 3


class ApiServer:
    def __init__(
        self, app: FastAPI, host: str, port: int, cert_file: Path | None = None, key_file: Path | None = None,
        trusted_proxies: Sequence[str] = (), reload_every_s: float = 5.0,
    ) -> None:
        self._tls = (cert_file, key_file) if cert_file is not None and key_file is not None else None
        self._server = _QuietServer(uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off",
            ssl_certfile=str(cert_file) if self._tls else None, ssl_keyfile=str(key_file) if self._tls else None,
            proxy_headers=bool(trusted_proxies), forwarded_allow_ips=list(trusted_proxies) or None,
            # A client keeping its connection open (a browser, a live-update stream) does not hold the stop longer.
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        ))
        self._reload_every_s = reload_every_s
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None

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
            raise LinewardenError("the API server did not start (is the port in use, or the certificate unreadable?)")
        if self._tls is not None:
            self._watch = asyncio.create_task(self._reload(), name="collector-api-tls-reload")
        port: int = self._server.servers[0].sockets[0].getsockname()[1]
        return port

    def _stamp(self) -> tuple[float, ...]:
        assert self._tls is not None
        return tuple(p.stat().st_mtime_ns if p.exists() else -1 for p in self._tls)

    async def _reload(self) -> None:
        assert self._tls is not None
        seen = self._stamp()
        context = self._server.config.ssl
        while True:
            await asyncio.sleep(self._reload_every_s)
            now = self._stamp()
            if now == seen or context is None:
                continue
            try:
                context.load_cert_chain(str(self._tls[0]), str(self._tls[1]))
            except (OSError, ssl.SSLError) as exc:  # half-written pair: keep serving the old one, try again
                log.warning("API certificate not reloaded (kept the previous one): %s", exc)
                continue
            seen = now
            log.info("API certificate reloaded from %s", self._tls[0])

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self._task is None:
            return
        self._server.exit()
        with contextlib.suppress(Exception, SystemExit):
            await self._task
        self._task = None
