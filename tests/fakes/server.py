"""A threaded HTTP server on a free loopback port that hands each request to a fake vendor and records it."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class Rejected(Exception):
    """Raised by a fake's handler: the vendor's error status and body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or {}


class FakeVendor:
    """Subclasses implement handle(); every request lands in `requests`, refused ones also in `rejected`.

    `stall_next(n)` makes the next n accepting writes (the fake calls `maybe_stall()` after changing its
    state) hold their answer until `stop()`: the vendor did the work but the client times out, the worst case.
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.rejected: list[tuple[Request, int]] = []
        self.lock = threading.Lock()
        self._stalls = 0
        self._release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                req = Request(self.command, parts.path, parse_qs(parts.query), self.headers, self.rfile.read(length))
                reply = fake.dispatch(req)
                data = b"" if reply.body is None else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if data:
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up waiting (a stalled answer)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which never ran if start() did not
            self._server.shutdown()
        self._server.server_close()

    def stall_next(self, count: int = 1) -> None:
        with self.lock:
            self._stalls += count

    def release(self) -> None:
        """Let stalled answers go (to a client that may be gone by now)."""
        self._release.set()

    def maybe_stall(self) -> None:
        with self.lock:
            stall = self._stalls > 0
            self._stalls -= stall
        if stall:
            self._release.wait(timeout=30)

    def dispatch(self, req: Request) -> Reply:
        with self.lock:
            self.requests.append(req)
        try:
            return self.handle(req)
        except Rejected as exc:
            with self.lock:
                self.rejected.append((req, exc.status))
            return Reply(exc.status, exc.body, exc.headers)

    def handle(self, req: Request) -> Reply:
        raise NotImplementedError


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def require_json(req: Request, status: int = 415, body: Any = None) -> Any:
    """The body as JSON, after checking Content-Type says so; Rejected(status) otherwise."""
    if (req.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
        raise Rejected(status, body if body is not None else {"error": "Content-Type must be application/json"})
    try:
        return req.json()
    except ValueError:
        raise Rejected(400, body if body is not None else {"error": "body is not JSON"}) from None
