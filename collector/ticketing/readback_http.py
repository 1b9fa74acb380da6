"""HTTP for reading a vendor's tickets back: a request budget per minute, 429 + Retry-After honoured, answers
bounded in size and required to be JSON. Anything else wrong is a TicketError: the round ends, the loop goes on."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from linewarden.config.contract import Readback
from linewarden.errors import TicketError

Sleep = Callable[[float], Awaitable[None]]
# A 429 is waited out (its Retry-After, or this long without one) at most this often per request.
RATE_LIMIT_TRIES = 3
DEFAULT_RETRY_AFTER_S = 5.0


class RateLimited(TicketError):
    """The vendor asked us to wait longer than `max_retry_after`, or kept refusing: the round ends here."""


@dataclass
class Budget:
    """At most `per_minute` requests in any 60 s: a sliding window of the last `per_minute` request times."""

    per_minute: int
    monotonic: Callable[[], float] = time.monotonic
    sleep: Sleep = asyncio.sleep
    _sent: deque[float] = field(init=False, default_factory=deque)

    async def take(self) -> None:
        """Wait until a request may go (one reader's requests are sequential)."""
        now = self.monotonic()
        if len(self._sent) >= self.per_minute:
            opens = self._sent.popleft() + 60.0
            if opens > now:
                await self.sleep(opens - now)
                now = max(opens, self.monotonic())
        self._sent.append(now)


def retry_after_s(value: str | None, now_s: float) -> float:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP-date, RFC 9110 10.2.3)."""
    if not value:
        return DEFAULT_RETRY_AFTER_S
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_S
    if when.tzinfo is None:
        return DEFAULT_RETRY_AFTER_S
    return max(0.0, when.timestamp() - now_s)


class ReadbackHttp:
    def __init__(self, client: httpx.AsyncClient, vendor: str, config: Readback, budget: Budget,
                 sleep: Sleep = asyncio.sleep, wall: Callable[[], float] = time.time) -> None:
        self._client = client
        self._vendor = vendor
        self._config = config
        self._budget = budget
        self._sleep = sleep
        self._wall = wall
        self.requests = 0

    async def json(
        self, method: str, url: str, *, params: Mapping[str, str] | None = None, body: Any = None
    ) -> tuple[Any, httpx.Headers]:
        limit = self._config.max_retry_after.total_seconds()
        for _ in range(RATE_LIMIT_TRIES):
            await self._budget.take()
            self.requests += 1
            status, headers, data = await self._send(method, url, params, body)
            if status == 429:
                wait = retry_after_s(headers.get("Retry-After"), self._wall())
                if wait > limit:
                    raise RateLimited(f"{self._vendor}: rate limited, Retry-After {wait:.0f} s > {limit:.0f} s")
                await self._sleep(wait)
                continue
            if not 200 <= status < 300:
                raise TicketError(f"{self._vendor}: {method} {url}: HTTP {status}: {data[:200]!r}")
            try:
                return _loads(data), headers
            except ValueError:
                raise TicketError(f"{self._vendor}: {method} {url}: answer is not JSON") from None
        raise RateLimited(f"{self._vendor}: still rate limited after {RATE_LIMIT_TRIES} waits")

    async def _send(
        self, method: str, url: str, params: Mapping[str, str] | None, body: Any
    ) -> tuple[int, httpx.Headers, bytes]:
        cap = self._config.max_response_bytes
        try:
            async with self._client.stream(method, url, params=params, json=body) as response:
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise TicketError(f"{self._vendor}: {method} {url}: answer larger than {cap} bytes ({declared})")
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > cap:
                        raise TicketError(f"{self._vendor}: {method} {url}: answer larger than {cap} bytes")
                    chunks.append(chunk)
                return response.status_code, response.headers, b"".join(chunks)
        except httpx.HTTPError as exc:
            raise TicketError(f"{self._vendor}: {method} {url}: {type(exc).__name__}: {exc}") from exc


def _loads(data: bytes) -> Any:
    return json.loads(data) if data else None
