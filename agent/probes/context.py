"""What probes share: one Modbus connection per host:port, one OPC UA session per endpoint, one CPU sampler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.probes.backoff import Backoff, BackoffPolicy
from agent.probes.host import CpuSampler
from agent.probes.modbus_link import ModbusLink
from agent.probes.opcua_session import OpcUaSession, session_key
from agent.probes.process import ServiceStatus, windows_service_status
from linewarden.config.targets import OpcUaTarget

DEFAULT_BACKOFF = BackoffPolicy()


class ProbeContext:
    """Create one per agent; pass it to every make_probe; `await close()` it when the agent stops."""

    def __init__(
        self,
        backoff: BackoffPolicy = DEFAULT_BACKOFF,
        service_status: ServiceStatus = windows_service_status,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.backoff = backoff
        self.service_status = service_status
        self.cpu = CpuSampler()
        self._clock = clock
        self.modbus_links: dict[tuple[str, int], ModbusLink] = {}
        self.opcua_sessions: dict[tuple[Any, ...], OpcUaSession] = {}

    def _new_backoff(self) -> Backoff:
        return Backoff(self.backoff) if self._clock is None else Backoff(self.backoff, self._clock)

    def modbus_link(self, host: str, port: int, timeout: float) -> ModbusLink:
        """The shared link to host:port; the first target to ask sets its timeout."""
        key = (host, port)
        if key not in self.modbus_links:
            self.modbus_links[key] = ModbusLink(host, port, timeout, self._new_backoff())
        return self.modbus_links[key]

    def opcua_session(self, target: OpcUaTarget, timeout: float) -> OpcUaSession:
        key = session_key(target)
        if key not in self.opcua_sessions:
            self.opcua_sessions[key] = OpcUaSession(target, timeout, self._new_backoff())
        return self.opcua_sessions[key]

    async def close(self) -> None:
        for link in self.modbus_links.values():
            await link.close()
        for session in self.opcua_sessions.values():
            await session.drop()
