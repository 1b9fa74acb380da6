"""Process probe: processes by name or command line (psutil), and Windows services by name."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import psutil

from agent.conditions import code_part
from agent.probes.base import Probe, ProbeResult
from linewarden.config.targets import ProcessTarget
from linewarden.domain import State

if TYPE_CHECKING:
    from agent.probes.context import ProbeContext


_DEGRADED_SERVICE = {"start_pending", "continue_pending", "pause_pending", "paused"}


def windows_service_status(name: str) -> str | None:
    """The real lookup (Windows only). Raises OSError where there are no Windows services."""
    win_service_get = getattr(psutil, "win_service_get", None)
    if win_service_get is None:
        raise OSError("Windows services can only be checked on Windows")
    try:
        status: str = win_service_get(name).status()
    except psutil.NoSuchProcess:
        return None
    return status


def count_processes(name: str | None, cmdline_contains: str | None) -> int:
    """How many running processes match both criteria (the ones given). Runs psutil; call it in a thread."""
    count = 0
    for proc in psutil.process_iter(attrs=["name", "cmdline"], ad_value=None):
        info = proc.info
        if name is not None and (info.get("name") or "").lower() != name.lower():
            continue
        if cmdline_contains is not None and cmdline_contains not in " ".join(info.get("cmdline") or []):
            continue
        count += 1
    return count


class ProcessProbe(Probe[ProcessTarget]):
    kind = "process"

    def __init__(self, target: ProcessTarget, timeout: timedelta, context: ProbeContext, interval: timedelta) -> None:
        super().__init__(target, timeout, context, interval)
        self._service_status = context.service_status

    async def poll(self, now: float) -> ProbeResult:
        started = time.perf_counter()
        target = self.target
        reasons: list[str] = []
        causes: list[str] = []
        state = State.UP
        try:
            if target.name is not None or target.cmdline_contains is not None:
                found = await asyncio.wait_for(
                    asyncio.to_thread(count_processes, target.name, target.cmdline_contains), self.timeout_s
                )
                if found < target.min_count:
                    state = State.DOWN
                    reasons.append(f"{found} of {target.min_count} {self._what()} running")
                    causes.append("process.missing")
            if target.service is not None:
                status = await asyncio.wait_for(asyncio.to_thread(self._service_status, target.service), self.timeout_s)
                service_state, reason = _service_state(target.service, status)
                if service_state != State.UP:
                    state = State.DOWN if State.DOWN in (state, service_state) else service_state
                    reasons.append(reason)
                    causes.append(f"service.{code_part(status or 'not_found')}")
        except TimeoutError:
            reason = f"process list not read within {self.timeout_s:g} s"
            return ProbeResult(State.UNKNOWN, reason, cause="process.list_timeout")
        except OSError as exc:
            return ProbeResult(State.UNKNOWN, str(exc), cause="process.error")
        latency = (time.perf_counter() - started) * 1000
        return ProbeResult(state, "; ".join(reasons), latency, cause=causes[0] if causes else "")

    def _what(self) -> str:
        what = "processes"
        if self.target.name is not None:
            what += f" named {self.target.name!r}"
        if self.target.cmdline_contains is not None:
            what += f" with {self.target.cmdline_contains!r} in the command line"
        return what


def _service_state(name: str, status: str | None) -> tuple[State, str]:
    if status is None:
        return State.DOWN, f"service {name!r} not found"
    if status == "running":
        return State.UP, ""
    if status in _DEGRADED_SERVICE:
        return State.DEGRADED, f"service {name!r} is {status}"
    return State.DOWN, f"service {name!r} is {status}"
