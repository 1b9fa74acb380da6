"""The console on a finished demo's data: `linewarden demo` ends here unless run with --no-console."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
from pathlib import Path

from fastapi import FastAPI

from collector.api.server import ApiServer
from collector.console.app import create_console
from collector.console.users import add_user
from collector.service import wall_clock_ms
from collector.store import open_store
from linewarden.book import load_book
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load

DEMO_USER = "demo"


async def serve_console(config_path: Path) -> None:
    """Serve the console on a free loopback port with a fresh admin login, printed, until interrupted."""
    config = load(CollectorConfig, config_path)
    store = open_store(config)
    try:
        password = secrets.token_urlsafe(12)
        add_user(store, DEMO_USER, password, "admin", None, (), wall_clock_ms(), "demo", socket.gethostname())
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        # The demo's console listens on loopback only and its login lives for one run: no second factor.
        settings = config.console.model_copy(update={"mfa_required_roles": []})
        console = create_console(store, load_book(config, config_path), wall_clock_ms, settings,
                                 config.collector.timezone, missed_heartbeats=config.liveness.missed_heartbeats)
        app.mount(config.console.prefix, console)
        server = ApiServer(app, "127.0.0.1", 0)
        port = await server.start()
        print(f"\nthe console is running on the demo's data: http://127.0.0.1:{port}{config.console.prefix}/\n"
              f"  log in as {DEMO_USER!r} with password {password!r} (an admin made for this run)\n"
              "  the demo asks no second factor (loopback only)\n"
              "  press Ctrl-C to stop it", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await console.state.hub.stop()
            await server.stop()
            print("console stopped", flush=True)
    finally:
        store.close()
