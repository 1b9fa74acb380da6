"""TCP probe: can a connection be opened, and how long does it take."""

from __future__ import annotations

import asyncio
import contextlib
import time

from agent.probes.base import Probe, ProbeResult
from linewarden.config.targets import TcpTarget
from linewarden.domain import State


class TcpProbe(Probe[TcpTarget]):
    kind = "tcp"

    async def poll(self, now: float) -> ProbeResult:
        started = time.perf_counter()
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.target.host, self.target.port), self.timeout_s
            )
        except TimeoutError:
            return ProbeResult(State.DOWN, f"no answer within {self.timeout_s:g} s", cause="tcp.timeout")
        except ConnectionRefusedError:
            return ProbeResult(State.DOWN, "connection refused", cause="tcp.refused")
        except OSError as exc:
            return ProbeResult(State.DOWN, f"cannot connect: {exc.strerror or exc}", cause="tcp.unreachable")
        latency = (time.perf_counter() - started) * 1000
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        limit = self.target.degraded_latency
        if limit is not None and latency > limit.total_seconds() * 1000:
            return ProbeResult(
                State.DEGRADED,
                f"slow connect: {latency:.0f} ms (limit {limit.total_seconds() * 1000:.0f} ms)",
                latency,
                cause="tcp.slow",
            )
        return ProbeResult(State.UP, latency_ms=latency)
