"""Host probe: CPU, memory and disk use of the agent's own host, each against its threshold."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from agent.conditions import Failure, worst
from agent.probes.base import Probe, ProbeResult
from linewarden.config.targets import HostTarget
from linewarden.domain import State

if TYPE_CHECKING:
    from agent.probes.context import ProbeContext


class CpuSampler:
    """The one caller of psutil.cpu_percent(interval=None) in the agent.

    That function measures since its previous call, from module-wide state, and returns a meaningless 0.0 the
    first time; so it is primed once here and each sample covers the time since the last one. Samples asked
    for less than `min_spacing` seconds apart return the previous value.
    """

    def __init__(self, min_spacing: float = 1.0) -> None:
        self.min_spacing = min_spacing
        psutil.cpu_percent(interval=None)
        self._at = time.monotonic()
        self._value: float | None = None

    def sample(self) -> float | None:
        """CPU use in percent since the previous sample; None until a first full interval has passed."""
        now = time.monotonic()
        if now - self._at >= self.min_spacing:
            self._value = float(psutil.cpu_percent(interval=None))
            self._at = now
        return self._value


class HostProbe(Probe[HostTarget]):
    kind = "host"

    def __init__(self, target: HostTarget, timeout: timedelta, context: ProbeContext, interval: timedelta) -> None:
        super().__init__(target, timeout, context, interval)
        self._cpu = context.cpu  # primed when the probe is made, not at its first poll
        # Own small pool: a hung network drive can pin a thread for minutes; it must not starve the agent's.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"lw-host-{target.id}")
        self._pending: dict[Path, Future[Any]] = {}

    async def poll(self, now: float) -> ProbeResult:
        started = time.perf_counter()
        target = self.target
        failures: list[Failure] = []
        values: dict[str, Any] = {}
        cpu = self._cpu.sample()
        if cpu is not None:
            values["cpu_pct"] = cpu
            if cpu > target.max_cpu_pct:
                failures.append(
                    Failure(State.DEGRADED, f"CPU {cpu:.0f} % (limit {target.max_cpu_pct:g} %)", "host.cpu")
                )
        memory = float(psutil.virtual_memory().percent)
        values["memory_pct"] = memory
        if memory > target.max_memory_pct:
            reason = f"memory {memory:.0f} % (limit {target.max_memory_pct:g} %)"
            failures.append(Failure(State.DEGRADED, reason, "host.memory"))
        for disk in target.disks:
            used, problem = await self._disk_used(disk.path)
            if problem:
                failures.append(Failure(State.DEGRADED, problem, "host.disk_unreadable"))
            elif used is not None:
                values[f"disk_pct:{disk.path}"] = used
                if used > disk.max_used_pct:
                    reason = f"disk {disk.path} {used:.0f} % used (limit {disk.max_used_pct:g} %)"
                    failures.append(Failure(State.DEGRADED, reason, "host.disk"))
        return ProbeResult.of(worst(failures), (time.perf_counter() - started) * 1000, values)

    async def _disk_used(self, path: Path) -> tuple[float | None, str]:
        future = self._pending.get(path)
        if future is None:
            future = self._pool.submit(psutil.disk_usage, str(path))
            self._pending[path] = future
        try:
            usage = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.timeout_s)
        except TimeoutError:
            # keep waiting on the same call next time instead of piling up hung threads
            return None, f"disk {path} did not answer within {self.timeout_s:g} s"
        except OSError as exc:
            self._pending.pop(path, None)
            return None, f"disk {path}: {exc.strerror or exc}"
        self._pending.pop(path, None)
        return float(usage.percent), ""

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
