"""What probes share: one Modbus connection per line (host:port or serial port), one OPC UA session per
endpoint, one HTTP client per TLS setting, one CPU sampler. Protocol modules are imported on first use, so an
agent loads only the libraries its configured probe kinds need."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.probes.backoff import Backoff, BackoffPolicy
from linewarden.config.agent import OpcUaSection
from linewarden.config.targets import ModbusTarget, OpcUaTarget

if TYPE_CHECKING:
    import httpx

    from agent.probes.host import CpuSampler
    from agent.probes.modbus_link import ModbusLink
    from agent.probes.opcua_session import OpcUaSession

DEFAULT_BACKOFF = BackoffPolicy()
HttpKey = tuple[bool, Path | None] | tuple[str]  # a TLS setting, or ("http",): plain http:// only
ServiceStatus = Callable[[str], str | None]
"""Looks up a Windows service by name: its psutil status ('running', 'stopped', ...), None when there is none."""


class ProbeContext:
    """Create one per agent; pass it to every make_probe; `await close()` it when the agent stops."""

    def __init__(
        self,
        backoff: BackoffPolicy = DEFAULT_BACKOFF,
        service_status: ServiceStatus | None = None,
        clock: Callable[[], float] | None = None,
        opcua_trust: OpcUaSection | None = None,
    ) -> None:
        """`opcua_trust`: the agent's [opcua] trust settings, trust_dir resolved (AgentConfig.opcua_trust())."""
        self.backoff = backoff
        self._service_status = service_status
        self._cpu: CpuSampler | None = None
        self._clock = clock
        self.opcua_trust = opcua_trust or OpcUaSection()
        self.modbus_links: dict[str, ModbusLink] = {}
        self.opcua_sessions: dict[tuple[Any, ...], OpcUaSession] = {}
        self.http_clients: dict[HttpKey, httpx.AsyncClient] = {}

    @property
    def service_status(self) -> ServiceStatus:
        """The Windows service lookup (psutil's unless one was given); psutil is loaded only when asked."""
        if self._service_status is None:
            from agent.probes.process import windows_service_status

            self._service_status = windows_service_status
        return self._service_status

    @property
    def cpu(self) -> CpuSampler:
        """The host's CPU sampler, made (and psutil loaded) for the first host probe."""
        if self._cpu is None:
            from agent.probes.host import CpuSampler

            self._cpu = CpuSampler()
        return self._cpu

    def _new_backoff(self) -> Backoff:
        return Backoff(self.backoff) if self._clock is None else Backoff(self.backoff, self._clock)

    def modbus_link(self, target: ModbusTarget, timeout: float, interval: float) -> ModbusLink:
        """The shared link to the target's line (`target.line`); the first target to ask sets its timeout.
        Reconnects are tried at least every half `interval` (the caller's poll interval)."""
        from agent.probes.modbus_link import ModbusLink

        key = target.line
        if key not in self.modbus_links:
            self.modbus_links[key] = ModbusLink(target, timeout, self._new_backoff())
        link = self.modbus_links[key]
        link.backoff.limit_to(interval)
        return link

    def opcua_session(self, target: OpcUaTarget, timeout: float, interval: float) -> OpcUaSession:
        from agent.probes.opcua_session import OpcUaSession, session_key
        from agent.probes.opcua_trust import TrustList

        key = session_key(target)
        if key not in self.opcua_sessions:
            trust = TrustList(target.trust_dir or self.opcua_trust.trust_dir,
                              (target.trust or self.opcua_trust.trust) == "tofu")
            self.opcua_sessions[key] = OpcUaSession(target, timeout, self._new_backoff(), trust)
        session = self.opcua_sessions[key]
        session.backoff.limit_to(interval)
        return session

    def http_client(self, verify_tls: bool, ca_file: Path | None, urls: Iterable[str] = ()) -> httpx.AsyncClient:
        """The shared client for one TLS setting: its connection pool keeps connections to each server alive
        across polls, and one SSL context serves every target (each costs ~1 MB). Targets whose `urls` are all
        plain http:// share a client whose SSL context trusts no certificate: it is never used (the agent
        follows no redirects), and it spares loading the system's CA certificates (~1.3 MB)."""
        import httpx

        plain = bool(urls) and all(url[:7].lower() == "http://" for url in urls)
        key: HttpKey = ("http",) if plain else (verify_tls, ca_file)
        if key not in self.http_clients:
            verify: ssl.SSLContext | bool = verify_tls
            if plain:
                verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, with nothing to trust
            elif verify_tls and ca_file is not None:
                verify = ssl.create_default_context(cafile=str(ca_file))
            self.http_clients[key] = httpx.AsyncClient(verify=verify)
        return self.http_clients[key]

    async def close(self) -> None:
        for link in self.modbus_links.values():
            await link.close()
        for session in self.opcua_sessions.values():
            await session.drop()
        for client in self.http_clients.values():
            await client.aclose()
