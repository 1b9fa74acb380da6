"""Request body limits, enforced while the body streams in: nothing over the limit is ever held in memory.

A declared `Content-Length` over the limit is answered 413 before one byte of the body is read; a body that
grows past the limit as it arrives (chunked, or a lying header) is cut off at the chunk that crosses it.
Either way the answer is JSON: `{"detail": "..."}`, like every other error of the API.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

TOO_LARGE = 413


def too_large(limit: int) -> str:
    return f"request body over the limit of {limit} bytes"


class BodyLimit:
    """ASGI middleware: `limit_for(path)` is the largest body, in bytes, a request to `path` may carry."""

    def __init__(self, app: Asgi, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(str(scope.get("path", "")))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _answer(send, TOO_LARGE, too_large(limit))
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the app's body read: FastAPI answers it as it answers its own errors.
                    raise HTTPException(TOO_LARGE, too_large(limit))
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            if not (text.isascii() and text.isdigit()):
                return None
            return int(text) if len(text) <= 18 else 10**18  # no 4,300-digit int parsing for a hostile header
    return None


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
