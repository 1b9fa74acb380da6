"""Run the agent or the collector inside a service manager's process (the Windows service).

Everything here is portable and tested on Linux; `linewarden/winservice.py` is the thin pywin32 layer
that calls `ServiceHost.run()` from the service's main thread and `stop()` from its control handler.
A service has no console: every log line goes to a rotating file in the log directory and, at WARNING
and above, to the handlers the layer adds (the Windows Event Log).
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Literal

from linewarden.errors import ConfigError
from linewarden.logs import make_formatter, setup_logging

Role = Literal["agent", "collector"]
ROLES: tuple[Role, ...] = ("agent", "collector")
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
LOG_BYTES, LOG_BACKUPS = 10 * 1024 * 1024, 5

log = logging.getLogger("linewarden.service")


def rotating_file(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    return logging.handlers.RotatingFileHandler(path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")


class ServiceHost:
    def __init__(
        self, role: Role, config: Path, log_dir: Path, extra_handlers: Sequence[logging.Handler] = ()
    ) -> None:
        self.role = role
        self.config = config
        self.log_file = log_dir / f"linewarden-{role}.log"
        self._file = rotating_file(self.log_file)
        self._extra = list(extra_handlers)
        for handler in self._extra:
            handler.setLevel(max(handler.level, logging.WARNING))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = threading.Event()
        self.started = threading.Event()  # set once the app runs (config loaded, serving)

    def _logging(self, level: str, fmt: Literal["text", "json"]) -> None:
        self._file.setFormatter(make_formatter(fmt))
        setup_logging(level, fmt, extra_handlers=[self._file, *self._extra], console=False)

    def run(self) -> int:
        """Run until `stop()`; 0 after a clean stop, 2 for a bad config, 1 when the app failed."""
        self._logging("info", "text")
        try:
            return asyncio.run(self._main())
        except ConfigError as exc:
            log.error("linewarden %s not started: %s", self.role, exc)
            return EXIT_USAGE
        except Exception as exc:
            log.exception("linewarden %s failed: %s", self.role, exc)
            return EXIT_RUNTIME
        finally:
            self._file.flush()

    def stop(self) -> None:
        """From any thread (the service control handler)."""
        self._stop_requested.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)

    async def _main(self) -> int:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        if self._stop_requested.is_set():
            return EXIT_OK
        runner = await (self._agent() if self.role == "agent" else self._collector())
        self.started.set()
        await runner(self._stop)
        log.info("linewarden %s service stopped", self.role)
        return EXIT_OK

    async def _agent(self) -> Callable[[asyncio.Event], Awaitable[None]]:
        from agent.runtime import Agent
        from linewarden.config.agent import AgentConfig
        from linewarden.config.load import load
        from linewarden.production import load_production_calendar

        cfg = load(AgentConfig, self.config)
        load_production_calendar(cfg, self.config)
        self._logging(cfg.agent.log_level, cfg.agent.log_format)
        agent = Agent(cfg, self.config)

        async def run(stop: asyncio.Event) -> None:
            task = asyncio.create_task(agent.run())
            waiter = asyncio.create_task(stop.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            await agent.stop()
            await task  # raises what made the agent fail

        return run

    async def _collector(self) -> Callable[[asyncio.Event], Awaitable[None]]:
        from collector.service import CollectorService
        from collector.store import open_store
        from linewarden.book import load_book
        from linewarden.config.collector import CollectorConfig
        from linewarden.config.load import load

        config = load(CollectorConfig, self.config)
        self._logging(config.collector.log_level, config.collector.log_format)
        book = load_book(config, self.config)
        store = open_store(config)

        async def run(stop: asyncio.Event) -> None:
            log.info("collector %s starting as a service", config.collector.id)
            try:
                await CollectorService(config, store, book=book, serve_api=True).run(stop)
            finally:
                store.close()

        return run
