"""JSON over HTTP for the sinks: one request, its status sorted into retryable and rejected."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from linewarden.errors import TicketError, TicketRejected

# The dispatcher bounds each attempt with its own deadline; this only stops a socket waiting forever.
HTTP_TIMEOUT_S = 60.0

# 408 (timeout), 409 (edit conflict) and 429 (rate limit) clear up on their own; other 4xx do not.
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


async def request_json(
    client: httpx.AsyncClient,
    vendor: str,
    method: str,
    url: str,
    *,
    json: Any = None,
    content: bytes | None = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """Send one request; return the decoded JSON body (None when empty). Raise TicketRejected on a 4xx that
    retrying cannot fix, TicketError on anything else that went wrong."""
    try:
        response = await client.request(method, url, json=json, content=content, params=params, headers=headers)
    except httpx.HTTPError as exc:
        raise TicketError(f"{vendor}: {method} {url}: {type(exc).__name__}: {exc}") from exc
    if response.is_success:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise TicketError(f"{vendor}: {method} {url}: response is not JSON") from exc
    problem = f"{vendor}: {method} {url}: HTTP {response.status_code}: {response.text[:300]}"
    if 400 <= response.status_code < 500 and response.status_code not in _RETRYABLE_4XX:
        raise TicketRejected(problem)
    raise TicketError(problem)


def field(data: Any, *path: str) -> str:
    """A string at `path` in a vendor's JSON answer; TicketError naming the path when it is missing."""
    node = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise TicketError(f"vendor answer lacks {'.'.join(path)}")
        node = node[key]
    if not isinstance(node, str | int):
        raise TicketError(f"vendor answer has no text at {'.'.join(path)}")
    return str(node)
