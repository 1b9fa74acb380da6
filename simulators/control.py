"""The fault-injection control API of a running simulated plant (loopback HTTP, JSON), and its client.

    GET  /devices                 → {"plant": name, "devices": [status, ...]}
    GET  /devices/{name}          → status of one device
    POST /devices/{name}/faults   ← {"fault": "down", "seconds": 45}  → {"device": name, "applied": "down seconds=45.0"}

Errors answer `{"error": message}` with 400 (bad fault), 404 (no such device) or 405.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx
from pydantic import ValidationError

from linewarden.errors import SimulatorError
from simulators.fault_spec import FaultSpec
from simulators.http import HttpError, JsonHttpServer, Request, Response, Router
from simulators.lifecycle import AsyncService
from simulators.plant import Plant


class ControlServer(AsyncService):
    """Serve the control API of `plant` on host:port (port 0 picks a free port)."""

    def __init__(self, plant: Plant, host: str = "127.0.0.1", port: int = 0) -> None:
        self.plant = plant
        router = Router()
        router.add("GET", "/devices", self._devices)
        router.add("GET", "/devices/{name}", self._device)
        router.add("POST", "/devices/{name}/faults", self._fault)
        self._http = JsonHttpServer(router, host, port)

    @property
    def url(self) -> str:
        return f"http://{self._http.host}:{self._http.port}"

    async def start(self) -> None:
        await self._http.start()

    async def stop(self) -> None:
        await self._http.stop()

    async def _devices(self, request: Request) -> Response:
        return Response(200, {"plant": self.plant.name, "devices": self.plant.status()})

    def _named(self, request: Request) -> str:
        name = request.params["name"]
        if name not in self.plant.devices:
            raise HttpError(404, f"no device {name!r} (devices: {', '.join(sorted(self.plant.devices))})")
        return name

    async def _device(self, request: Request) -> Response:
        return Response(200, self.plant.devices[self._named(request)].status())

    async def _fault(self, request: Request) -> Response:
        name = self._named(request)
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, 'the body is a JSON object such as {"fault": "down", "seconds": 45}')
        try:
            spec = FaultSpec.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise HttpError(400, f"{where}: {first['msg']}" if where else first["msg"]) from None
        await self.plant.apply(name, spec)
        return Response(200, {"device": name, "applied": spec.describe()})


class ControlClient:
    """Talk to a running plant's control API. A FaultTarget for the scenario runner."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout, trust_env=False)

    async def close(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def devices(self) -> list[dict[str, Any]]:
        body = await self._call("GET", "/devices")
        devices: list[dict[str, Any]] = body["devices"]
        return devices

    async def device_kinds(self) -> dict[str, str]:
        return {d["name"]: d["kind"] for d in await self.devices()}

    async def apply(self, device: str, spec: FaultSpec) -> None:
        await self._call("POST", f"/devices/{device}/faults", spec.model_dump(exclude_none=True))

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = await self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise SimulatorError(f"control API {self.url} unreachable: {exc}") from None
        try:
            data = response.json()
        except ValueError:
            raise SimulatorError(f"control API {self.url}{path} answered {response.status_code}, not JSON") from None
        if response.status_code != 200:
            raise SimulatorError(f"control API: {data.get('error', response.status_code)}")
        return data
