"""HTTP(S) probe: status code, latency, an optional JSON value with a condition, and the version it reports."""

from __future__ import annotations

import json
import ssl
import sys
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if "httpx" not in sys.modules:
    # httpx loads its command-line interface (click, rich, pygments: ~6 MB) whenever they are installed and
    # falls back to a stub when that import fails; the agent never runs it.
    sys.modules["httpx._main"] = None  # type: ignore[assignment]

import httpx

from agent.conditions import ConditionChecker, Failure, worst
from agent.probes.base import Probe, ProbeResult
from linewarden.config.base import Secret
from linewarden.config.targets import HttpTarget
from linewarden.domain import State

if TYPE_CHECKING:
    from agent.probes.context import ProbeContext

MISSING = object()


def dotted(data: Any, path: str) -> Any:
    """`data` at a dotted path ('status', 'db.ok', 'items.0.name'); MISSING when it is not there."""
    return walk(data, path.split("."))


def walk(data: Any, parts: Iterable[str]) -> Any:
    """`data` down the keys and list indexes `parts`; MISSING when one is not there."""
    for part in parts:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return MISSING
    return data


# The version an MES reports changes rarely: ask for it once a minute, not on every poll.
VERSION_EVERY_S = 60.0


class HttpProbe(Probe[HttpTarget]):
    kind = "http"

    def __init__(self, target: HttpTarget, timeout: timedelta, context: ProbeContext, interval: timedelta) -> None:
        super().__init__(target, timeout, context, interval)
        urls = [target.url] if target.version_url is None else [target.url, target.version_url]
        self._client = context.http_client(target.verify_tls, target.ca_file, urls)
        self._checker = ConditionChecker()
        self._version_due = 0.0

    async def poll(self, now: float) -> ProbeResult:
        target = self.target
        started = time.perf_counter()
        try:
            headers = self._headers()
        except ValueError as exc:
            return ProbeResult(State.UNKNOWN, f"header secret: {exc}", cause="config.secret_unavailable")
        try:
            response = await self._client.request(target.method, target.url, headers=headers, timeout=self.timeout_s)
        except httpx.TimeoutException:
            return ProbeResult(State.DOWN, f"no answer within {self.timeout_s:g} s", cause="http.timeout")
        except httpx.HTTPError as exc:
            reason, cause = _transport_failure(exc)
            return ProbeResult(State.DOWN, reason, cause=cause)
        latency = (time.perf_counter() - started) * 1000
        if response.status_code not in target.expected_status:
            reason = f"HTTP {response.status_code} {response.reason_phrase}".strip()
            return ProbeResult(State.DOWN, reason, latency, cause=f"http.status.{response.status_code}")
        failures: list[Failure] = []
        values: dict[str, Any] = {"status": response.status_code}
        body = _json(response) if target.json_path or target.version_json_path else None
        if target.json_path is not None:
            value = dotted(body, target.json_path)
            if value is MISSING:
                failures.append(
                    Failure(target.condition.fail_state, f"no '{target.json_path}' in the answer", "http.no_value")
                )
            else:
                values[target.json_path] = value
                failure = self._checker.check(target.json_path, value, target.condition, now)
                if failure is not None:
                    failures.append(failure)
        limit = target.degraded_latency
        if limit is not None and latency > limit.total_seconds() * 1000:
            limit_ms = limit.total_seconds() * 1000
            slow = f"slow answer: {latency:.0f} ms (limit {limit_ms:.0f} ms)"
            failures.append(Failure(State.DEGRADED, slow, "http.slow"))
        versions: dict[str, str] = {}
        if now >= self._version_due:
            versions = await self._versions(body, headers)
            self._version_due = now + VERSION_EVERY_S
        return ProbeResult.of(worst(failures), latency, values, versions)

    def _headers(self) -> dict[str, str]:
        """The headers with their secrets read now (a rotated token is used from the next poll on)."""
        return {k: v.reveal() if isinstance(v, Secret) else v for k, v in self.target.headers.items()}

    async def _versions(self, body: Any, headers: dict[str, str]) -> dict[str, str]:
        path = self.target.version_json_path
        if self.target.version_url is not None:
            try:
                response = await self._client.get(
                    self.target.version_url, headers=headers, timeout=self.timeout_s
                )
            except httpx.HTTPError:
                return {}
            if not response.is_success:
                return {}
            if path is None:
                return {"version": response.text.strip()[:200]}
            body = _json(response)
        if path is None:
            return {}
        value = dotted(body, path)
        return {} if value is MISSING or value is None else {"version": str(value)}


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _transport_failure(exc: httpx.HTTPError) -> tuple[str, str]:
    """(reason, cause) of a request that got no HTTP answer."""
    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(causes) < 10:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "connection refused", "http.refused"
    tls = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
    if tls is not None:
        return f"TLS failed: {getattr(tls, 'reason', None) or tls}", "http.tls"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {text}", "http.unreachable"
    return f"request failed: {text}", "http.request_failed"
