"""A minimal JSON-over-HTTP/1.1 server on asyncio streams, for the MES simulator and the control API.

One request per connection (`Connection: close`), or with `keep_alive` as many as the client sends until it
asks to close (HTTP/1.1 persistent connections); bodies by Content-Length only. Enough for httpx and curl;
it keeps the simulators free of a web framework. `stop()` closes the listening socket and open connections,
so a client sees "connection refused" exactly as with a crashed server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from linewarden.errors import SimulatorError

_MAX_HEADER_LINES = 100
_MAX_BODY = 1 << 20
_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str]
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case

    def json(self) -> Any:
        """The body parsed as JSON; HttpError 400 when it is not."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise HttpError(400, "body is not JSON") from None


@dataclass(frozen=True)
class Response:
    status: int
    body: Any = field(default_factory=dict)


class HttpError(Exception):
    """Raised by a handler to answer with this status and `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Handler = Callable[[Request], Awaitable[Response]]


class Router:
    """Routes like `/devices/{name}/faults` to handlers, per method."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method, re.compile(f"^{regex}$"), handler))

    async def dispatch(
        self, method: str, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> Response:
        allowed = False
        for route_method, regex, handler in self._routes:
            m = regex.match(path)
            if m is None:
                continue
            if route_method != method:
                allowed = True
                continue
            return await handler(Request(method, path, m.groupdict(), body, headers or {}))
        if allowed:
            raise HttpError(405, f"{method} not allowed on {path}")
        raise HttpError(404, f"no such resource: {path}")


class JsonHttpServer:
    """Serve a Router on host:port. Port 0 picks a free port once; restarts keep it."""

    def __init__(self, router: Router, host: str = "127.0.0.1", port: int = 0, keep_alive: bool = False) -> None:
        self.router = router
        self.host = host
        self.port = port
        self.keep_alive = keep_alive
        self.connections = 0  # accepted so far: how a test tells whether a client reuses its connection
        self.delay = 0.0  # seconds added before every response (a slow server)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._lifecycle = asyncio.Lock()  # one start or stop at a time

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        async with self._lifecycle:
            if self._server is not None:
                return
            try:
                self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
            except OSError as exc:
                raise SimulatorError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        async with self._lifecycle:
            server, self._server = self._server, None
            if server is None:
                return
            server.close()
            for handler in list(self._handlers):  # also those sleeping in `delay`: a crash answers nobody
                handler.cancel()
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        self.connections += 1
        try:
            again = True
            while again:
                answer = await self._answer(reader)
                if answer is None:  # the client closed the connection between requests
                    break
                status, body, close = answer
                again = self.keep_alive and not close
                if self.delay:
                    await asyncio.sleep(self.delay)
                payload = json.dumps(body).encode()
                head = (
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
                    "Content-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n"
                    f"Connection: {'keep-alive' if again else 'close'}\r\n\r\n"
                )
                writer.write(head.encode("ascii") + payload)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if handler is not None:
                self._handlers.discard(handler)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, Any, bool] | None:
        """Status, body, and whether the connection must close after this answer; None when the client closed
        the connection before sending a request."""
        first = await reader.readline()
        if not first:
            return None
        close = True
        try:
            method, path, headers = await self._read_head(first, reader)
            close = headers.get("connection", "").lower() == "close"
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                raise HttpError(400, "bad Content-Length") from None
            if length > _MAX_BODY:
                raise HttpError(413, "body too large")
            body = await reader.readexactly(length) if length else b""
            response = await self.router.dispatch(method, path, body, headers)
        except HttpError as exc:
            return exc.status, {"error": str(exc)}, True
        except SimulatorError as exc:
            return 400, {"error": str(exc)}, close
        except Exception as exc:  # a bad request must never take the simulator down
            return 500, {"error": f"{type(exc).__name__}: {exc}"}, close
        return response.status, response.body, close

    @staticmethod
    async def _read_head(first: bytes, reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
        request_line = first.decode("latin-1").strip()
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise HttpError(400, "malformed request line")
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADER_LINES):
            line = (await reader.readline()).decode("latin-1").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            raise HttpError(400, "too many header lines")
        return parts[0].upper(), parts[1].split("?", 1)[0], headers
