"""Simulated MES server: `GET /health` and `GET /version` over HTTP, with fault injection.

`GET /health` → 200 `{"status": "ok"|"degraded", "components": {"database": "ok", ...}}`, or 503
`{"status": "down", ...}` while `down(refuse=False)`. `GET /version` → `{"version": ..., "build": ...}`.
`keep_alive` keeps connections open for further requests (most application servers do); without it every
answer closes its connection. Faults: `slow(ms)`, `degraded(component)`, `down(seconds, refuse=True)`
(refuse: stop listening, so clients see connection refused; otherwise answer 503), `up()`,
`set_version(version, build)`, `restart()`, `clear()`.

`GET /interface` describes the MES↔ERP order interface: `{"interface": {"name": "erp-orders", "schema_version":
..., "last_exchange": <ISO 8601 UTC>}}`; the last exchange is the moment of the request unless
`stall_interface(age_s)` froze it that long ago. `set_interface(schema_version)` changes the version.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from linewarden.errors import SimulatorError
from simulators.http import JsonHttpServer, Request, Response, Router
from simulators.lifecycle import AsyncService


class MesServer(AsyncService):
    """An MES application server as seen by a health probe."""

    kind = "mes"

    def __init__(
        self,
        name: str = "mes",
        host: str = "127.0.0.1",
        port: int = 0,
        version: str = "5.2.0",
        build: str = "5200",
        components: tuple[str, ...] = ("database", "queue", "scheduler"),
        keep_alive: bool = False,
    ) -> None:
        if not components:
            raise SimulatorError("an MES needs at least one component")
        self.name = name
        self.version = version
        self.build = build
        self._components = {c: "ok" for c in components}
        self._answer_503 = False
        self._up_timer: asyncio.Task[None] | None = None
        router = Router()
        router.add("GET", "/health", self._health)
        router.add("GET", "/version", self._version)
        self._http = JsonHttpServer(router, host, port, keep_alive)
        self.restarts = 0
        self.interface_version = "3.0"
        self._stalled_since: datetime | None = None
        router.add("GET", "/interface", self._interface)

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return self._http.connections

    @property
    def url(self) -> str:
        return f"http://{self._http.host}:{self._http.port}"

    @property
    def endpoint(self) -> str:
        return self.url

    async def start(self) -> None:
        await self._http.start()

    async def stop(self) -> None:
        self._cancel_timer()
        await self._http.stop()

    # ------------------------------------------------------------------ faults

    async def slow(self, ms: int) -> None:
        """Delay every response by `ms` milliseconds (0 = normal speed)."""
        if ms < 0:
            raise SimulatorError("slow: ms must be >= 0")
        self._http.delay = ms / 1000

    async def degraded(self, component: str = "database") -> None:
        """Mark one component degraded: /health then reports status "degraded"."""
        if component not in self._components:
            raise SimulatorError(f"MES {self.name} has no component {component!r}; it has {sorted(self._components)}")
        self._components[component] = "degraded"

    async def down(self, seconds: float | None = None, refuse: bool = True) -> None:
        """Go down for `seconds` (None: until `up()`): stop listening, or answer 503 when refuse is False."""
        self._cancel_timer()
        if refuse:
            await self._http.stop()
        else:
            self._answer_503 = True
        if seconds is not None:
            self._up_timer = asyncio.create_task(self._up_after(seconds))

    async def up(self) -> None:
        self._cancel_timer()
        self._answer_503 = False
        await self._http.start()

    async def set_version(self, version: str, build: str | None = None) -> None:
        self.version = version
        if build is not None:
            self.build = build

    async def set_interface(self, schema_version: str) -> None:
        self.interface_version = schema_version

    async def stall_interface(self, age_s: float | None) -> None:
        """No exchange since `age_s` seconds ago (None: exchanges flow again)."""
        self._stalled_since = None if age_s is None else datetime.now(UTC) - timedelta(seconds=age_s)

    async def _interface(self, request: Request) -> Response:
        last = self._stalled_since or datetime.now(UTC)
        return Response(200, {"interface": {
            "name": "erp-orders", "schema_version": self.interface_version, "last_exchange": last.isoformat(),
        }})

    async def restart(self) -> None:
        """Stop listening and listen again on the same port (a service restart)."""
        self._cancel_timer()
        await self._http.stop()
        self._answer_503 = False
        self.restarts += 1
        await self._http.start()

    async def clear(self) -> None:
        """Remove every fault: normal speed, all components ok, listening. The version stays."""
        self._http.delay = 0.0
        self._components = dict.fromkeys(self._components, "ok")
        await self.up()

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "endpoint": self.url,
            "up": self._http.listening and not self._answer_503,
            "listening": self._http.listening,
            "health": self._health_body()["status"] if self._http.listening else "unreachable",
            "slow_ms": round(self._http.delay * 1000),
            "version": self.version,
            "build": self.build,
        }

    # ------------------------------------------------------------------ internals

    def _health_body(self) -> dict[str, Any]:
        if self._answer_503:
            state = "down"
        elif any(v != "ok" for v in self._components.values()):
            state = "degraded"
        else:
            state = "ok"
        return {"status": state, "components": dict(self._components)}

    async def _health(self, request: Request) -> Response:
        body = self._health_body()
        return Response(503 if body["status"] == "down" else 200, body)

    async def _version(self, request: Request) -> Response:
        if self._answer_503:
            return Response(503, {"error": "service unavailable"})
        return Response(200, {"version": self.version, "build": self.build})

    async def _up_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._up_timer = None
        self._answer_503 = False
        with contextlib.suppress(SimulatorError):  # port taken meanwhile: stay down, status shows it
            await self._http.start()

    def _cancel_timer(self) -> None:
        if self._up_timer is not None and self._up_timer is not asyncio.current_task():
            self._up_timer.cancel()
        self._up_timer = None
