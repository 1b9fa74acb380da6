"""Shared helpers for the probe integration tests: build validated targets and probes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from agent.probes.backoff import BackoffPolicy
from agent.probes.base import Probe, ProbeResult
from agent.probes.context import ProbeContext
from agent.probes.registry import make_probe
from linewarden.config.agent import Defaults
from linewarden.config.load import convert
from linewarden.config.targets import TargetConfig
from linewarden.domain import State

FAST = convert(Defaults, {"timeout": "500ms"})
# For a poll that must succeed where the work itself is slow on a busy machine (a signed and encrypted OPC UA
# handshake, reading every process's command line): FAST is for tests that watch a timeout fire.
UNHURRIED = convert(Defaults, {"timeout": "10s"})


def target(**fields: Any) -> TargetConfig:
    made: TargetConfig = convert(TargetConfig, {"id": "t1", "asset": "a1", **fields})
    return made


def fast_context(**kwargs: Any) -> ProbeContext:
    """Reconnect backoff short enough for tests to watch recovery."""
    return ProbeContext(backoff=BackoffPolicy(first_delay=0.05, max_delay=0.2), **kwargs)


def probe(context: ProbeContext, defaults: Defaults = FAST, **fields: Any) -> Probe[Any]:
    return make_probe(target(**fields), defaults, context)


async def poll_until(
    probe: Probe[Any], done: Callable[[ProbeResult], bool] | State, timeout: float = 10.0, what: str = ""
) -> ProbeResult:
    """Poll until the result is `done` (a state, or a test on the result); fail after `timeout` seconds."""
    test = done if callable(done) else (lambda r: r.state == done)
    deadline = time.monotonic() + timeout
    while True:
        result = await probe.poll(time.time())
        if test(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or done}; last result: {result}")
        await asyncio.sleep(0.05)
