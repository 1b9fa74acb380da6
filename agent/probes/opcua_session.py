"""One OPC UA session per endpoint, shared by the targets that poll it.

A lost session is never reused: each (re)connect builds a new asyncua Client (reusing one after a loss can
hang, FreeOpcUa/opcua-asyncio#1660), re-reads the namespace array (indexes may change across a server restart)
and MaxNodesPerRead. `generation` counts connects so probes know to re-resolve nodes and re-subscribe.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.probes.asyncua_client import (
    AttributeIds,
    Client,
    ObjectIds,
    SecurityPolicyBasic256Sha256,
    UaStatusCodeError,
    load_cryptography,
    ua,
)
from agent.probes.backoff import Backoff
from agent.probes.opcua_trust import TrustList, fingerprint, first_certificate
from linewarden.config.targets import OpcUaTarget
from linewarden.domain import State
from linewarden.errors import ProbeError


def standard_node(identifier: int) -> ua.NodeId:
    """A node of the OPC UA standard namespace (0), e.g. Server_ServerStatus_State."""
    return ua.NodeId.from_string(f"i={identifier}")


MAX_NODES_PER_READ = standard_node(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)
_MODES = {"Sign": ua.MessageSecurityMode.Sign, "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt}


def session_key(target: OpcUaTarget) -> tuple[Any, ...]:
    """Targets share a session when they reach the same endpoint the same way."""
    return (target.endpoint, target.security_policy, target.security_mode, target.certificate, target.username,
            target.user_certificate, target.server_certificate, target.trust_dir, target.trust)


class OpcUaFailure(ProbeError):
    """The session could not serve a probe; `cause` is the stable code, `configuration` the cause code of what
    may be the config's mistake (a namespace the server does not have); `state` what the target is meanwhile;
    `certificate` the server certificate (DER) that was refused, if that was the failure."""

    def __init__(
        self, reason: str, cause: str, configuration: str = "", state: State = State.DOWN,
        certificate: bytes | None = None,
    ) -> None:
        super().__init__(reason)
        self.cause = cause
        self.configuration = configuration
        self.state = state
        self.certificate = certificate

    def again(self) -> OpcUaFailure:
        return OpcUaFailure(str(self), self.cause, self.configuration, self.state, self.certificate)


UNTRUSTED_CAUSE = "config.untrusted_certificate"


def untrusted(der: bytes, why: str) -> OpcUaFailure:
    """A server whose certificate the agent does not trust: UNKNOWN, the plant's configuration to fix."""
    reason = f"untrusted server certificate SHA-256 {fingerprint(der)}: {why}"
    return OpcUaFailure(reason, UNTRUSTED_CAUSE, state=State.UNKNOWN, certificate=der)


class OpcUaSession:
    def __init__(self, target: OpcUaTarget, timeout: float, backoff: Backoff, trust: TrustList) -> None:
        self.settings = target
        self.timeout = timeout
        self.backoff = backoff
        self.trust = trust
        self.generation = 0
        self.max_nodes_per_read = 0
        self._namespaces: list[str] = []
        self._client: Client | None = None
        self._lock = asyncio.Lock()
        self._failure = OpcUaFailure("not connected", "opcua.not_connected")  # the last connect failure

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def client(self) -> Client:
        """The connected client, connecting first when needed. Raises OpcUaFailure with the reason."""
        async with self._lock:
            if self._client is not None:
                return self._client
            if not self.backoff.begin():
                raise self._failure.again()
            client = Client(self.settings.endpoint, timeout=self.timeout, watchdog_intervall=max(5.0, self.timeout))
            try:
                await asyncio.wait_for(self._open(client), self.timeout * 2)
            except Exception as exc:
                await _discard(client)
                if isinstance(exc, OpcUaFailure):
                    self._failure = exc
                else:
                    self._failure = OpcUaFailure(*_connect_failure(exc, self.timeout))
                self.backoff.failed()
                raise self._failure.again() from None
            self.backoff.succeeded()
            self.generation += 1
            self._client = client
            return client

    def namespace_index(self, uri: str) -> int:
        try:
            return self._namespaces.index(uri)
        except ValueError:
            raise OpcUaFailure(
                f"namespace {uri} is not on the server",
                "opcua.unknown_namespace",
                configuration="config.unknown_namespace",
            ) from None

    async def read(self, node_ids: Sequence[ua.NodeId]) -> list[ua.DataValue]:
        """Read the Value of all nodes: one Read request per MaxNodesPerRead nodes. Raises OpcUaFailure;
        a failed read drops the session so the next poll starts a new one."""
        client = await self.client()
        size = self.max_nodes_per_read or len(node_ids) or 1
        results: list[ua.DataValue] = []
        try:
            for start in range(0, len(node_ids), size):
                chunk = list(node_ids[start : start + size])
                results += await asyncio.wait_for(
                    client.uaclient.read_attributes(chunk, AttributeIds.Value), self.timeout
                )
        except TimeoutError:
            await self.drop(client)
            raise OpcUaFailure(f"no answer within {self.timeout:g} s", "opcua.timeout") from None
        except Exception as exc:
            await self.drop(client)
            raise OpcUaFailure(f"connection lost ({type(exc).__name__})", "opcua.connection_lost") from None
        return results

    async def drop(self, client: Client | None = None) -> None:
        """Forget the session (only if it is still `client`, when given) and close it in the background."""
        if self._client is None or (client is not None and client is not self._client):
            return
        old, self._client = self._client, None
        await _discard(old)

    async def _open(self, client: Client) -> None:
        settings = self.settings
        if settings.security_policy != "None" or settings.user_certificate is not None:
            load_cryptography()
        if settings.security_policy == "Basic256Sha256":
            assert settings.certificate is not None and settings.private_key is not None
            client.application_uri = _certificate_uri(settings.certificate) or client.application_uri
            await client.set_security(
                SecurityPolicyBasic256Sha256,
                certificate=str(settings.certificate),
                private_key=str(settings.private_key),
                server_certificate=await self._server_certificate(),
                mode=_MODES[settings.security_mode],
            )
        if settings.user_certificate is not None and settings.user_private_key is not None:
            await client.load_client_certificate(str(settings.user_certificate))
            await client.load_private_key(Path(settings.user_private_key))
        if settings.username is not None:
            client.set_user(settings.username)
            if settings.password is not None:
                client.set_password(settings.password.reveal())
        await client.connect()
        self._namespaces = list(await client.get_namespace_array())
        limit = (await client.uaclient.read_attributes([MAX_NODES_PER_READ], AttributeIds.Value))[0]
        good = limit.StatusCode is None or limit.StatusCode.is_good()
        value = limit.Value.Value if good and limit.Value is not None else 0
        self.max_nodes_per_read = int(value or 0)


    async def _server_certificate(self) -> str | bytes:
        """The configured `server_certificate` (a pin), else the certificate the endpoint offers if the trust
        list trusts it; the secure channel is then bound to exactly that certificate."""
        settings = self.settings
        if settings.server_certificate is not None:
            return str(settings.server_certificate)
        der = await fetch_server_certificate(settings, self.timeout)
        verdict = await asyncio.to_thread(self.trust.check, settings.endpoint, der)
        if not verdict.trusted:
            raise untrusted(der, verdict.reason)
        return der


async def fetch_server_certificate(settings: OpcUaTarget, timeout_s: float) -> bytes:
    """The certificate the server offers for the target's policy and mode (over an unsecured GetEndpoints)."""
    load_cryptography()
    client = Client(settings.endpoint, timeout=timeout_s)
    endpoints = await client.connect_and_get_server_endpoints()
    found = Client.find_endpoint(endpoints, _MODES[settings.security_mode], SecurityPolicyBasic256Sha256.URI)
    return first_certificate(found.ServerCertificate)


def _certificate_uri(path: Path) -> str | None:
    """The application URI in the certificate's subjectAltName; servers check it against the session's."""
    from cryptography import x509

    data = Path(path).read_bytes()
    cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    with contextlib.suppress(x509.ExtensionNotFound):
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        if uris:
            return str(uris[0])
    return None


def _connect_failure(exc: BaseException, timeout: float) -> tuple[str, str]:
    """(reason, cause) of a failed connect."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused", "opcua.refused"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s", "opcua.timeout"
    if isinstance(exc, UaStatusCodeError):
        return f"session refused: {ua.StatusCode(exc.code).name}", "opcua.session_refused"
    if isinstance(exc, OSError):
        return f"cannot connect: {exc.strerror or exc}", "opcua.unreachable"
    return f"cannot connect: {exc!r}", "opcua.connect_failed"


async def _discard(client: Client) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.disconnect(), 1.0)
