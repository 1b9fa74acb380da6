"""Simulated PLC with an OPC UA server (asyncua), with fault injection.

Address space, in the namespace of `namespace_uri`, string node ids, under `Objects/<name>`:
`s=Heartbeat` (UInt32, +1 every `heartbeat_period`), `s=Running` (Boolean), `s=FaultCode` (UInt16),
`s=Temperature`, `s=Pressure`, `s=Speed` (Double, moving; Temperature and Pressure have EngineeringUnits °C and
bar). Standard nodes: ServerStatus (State, CurrentTime,
BuildInfo.SoftwareVersion/BuildNumber), ServiceLevel (Byte, 255 healthy), OperationLimits.MaxNodesPerRead
(0 = unlimited; a larger read is refused with BadTooManyOperations, so clients must split).

Every start is a boot of a fresh server on the same port. With `shift_namespace=True` dummy namespaces are
registered first (two at the first boot, then one and two alternately), so the PLC namespace index is
never 2 and changes at every restart: clients must resolve it by URI. Process values and the heartbeat
count carry over from boot to boot.

Security (all optional): with `certificate` and `private_key` the server offers Basic256Sha256 (Sign and
SignAndEncrypt) and no unsecured endpoint unless `allow_unsecured`; `users` (name -> password) and
`user_certificates` (X.509 user token certificates) require a login: anonymous sessions are then refused.
`replace_certificate(...)` boots again with another server certificate (a firmware update that made a new one).

Faults: `down(seconds)`, `up()`, `slow(ms)` (delays every read a client makes), `degraded(...)`,
`set_version(sw, build)` (live, like an online program change), `restart()`, `clear()`.

Alarms & Conditions: `raise_alarm(name, severity, message)`, `acknowledge_alarm(name)` and `clear_alarm(name)`
send OffNormalAlarmType events from the Server object with the PLC folder as their source, ActiveState/Id,
AckedState/Id, Severity and Message set, Retain while active or unacknowledged (so ConditionRefresh returns
them). Alarms survive a restart and are announced again after the boot.
The server side of asyncua is quieted to CRITICAL: injected faults make it log errors on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping, Sequence
from copy import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.node import Node
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from linewarden.errors import SimulatorError
from simulators.broker import free_port
from simulators.lifecycle import AsyncService

logging.getLogger("asyncua.server").setLevel(logging.CRITICAL)

HEALTHY_SERVICE_LEVEL = 255


def _string_id(name: str, namespace_index: int) -> ua.NodeId:
    return ua.NodeId(ua.String(name), ua.Int16(namespace_index))


def _standard(object_id: int) -> ua.NodeId:
    return ua.NodeId(ua.Int32(object_id))


def _initialised_server() -> Server:
    """A server with the standard address space loaded: about a second of CPU. Run in a worker thread so
    the other devices sharing the event loop keep answering while a PLC boots (init creates no loop-bound
    objects; sessions and tasks only appear at start())."""
    server = Server()
    server.iserver.bind_condition_methods = 1  # ConditionRefresh, with this severity on its start/end events
    asyncio.run(server.init())
    return server


def _der(path: Path) -> bytes:
    data = path.read_bytes()
    return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER) if b"-----BEGIN" in data else data


class _Users(UserManager):
    """Logins the simulated PLC accepts: a name with its password, or an X.509 user certificate it knows."""

    def __init__(self, users: Mapping[str, str], certificates: Sequence[x509.Certificate], anonymous: bool) -> None:
        self.users = users
        self.certificates = {c.public_bytes(Encoding.DER) for c in certificates}
        self.anonymous = anonymous

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        if self.anonymous:
            return User(role=UserRole.User)
        if username is not None:
            known = self.users.get(username)
            return User(role=UserRole.User, name=username) if known is not None and known == password else None
        if isinstance(certificate, x509.Certificate):
            certificate = certificate.public_bytes(Encoding.DER)
        return User(role=UserRole.User, name="x509") if certificate in self.certificates else None


class OpcUaPlc(AsyncService):
    """A PLC's embedded OPC UA server. `async with OpcUaPlc("plc1") as plc: plc.endpoint`."""

    kind = "opcua"

    def __init__(
        self,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        namespace_uri: str = "urn:linewarden:sim:plc",
        software_version: str = "1.0.0",
        build_number: str = "100",
        heartbeat_period: float = 1.0,
        max_nodes_per_read: int = 0,
        shift_namespace: bool = False,
        certificate: Path | None = None,
        private_key: Path | None = None,
        allow_unsecured: bool = False,
        users: Mapping[str, str] | None = None,
        user_certificates: Sequence[Path] = (),
    ) -> None:
        if heartbeat_period <= 0:
            raise SimulatorError("heartbeat_period must be > 0")
        if max_nodes_per_read < 0:
            raise SimulatorError("max_nodes_per_read must be >= 0 (0 = unlimited)")
        if (certificate is None) != (private_key is None):
            raise SimulatorError("a server certificate needs its private key, and the other way round")
        self.name = name
        self.host = host
        self.port = port or free_port(host)
        self.namespace_uri = namespace_uri
        self.software_version = software_version
        self.build_number = build_number
        self.heartbeat_period = heartbeat_period
        self.max_nodes_per_read = max_nodes_per_read
        self.shift_namespace = shift_namespace
        self.certificate = certificate
        self.private_key = private_key
        self.allow_unsecured = allow_unsecured
        self.users = dict(users or {})
        self.user_certificates = [x509.load_der_x509_certificate(_der(p)) for p in user_certificates]
        self.boots = 0
        self.heartbeat = 0
        self.running = True
        self.fault_code = 0
        self.service_level = HEALTHY_SERVICE_LEVEL
        self.stale_heartbeat = False
        self.slow_ms = 0
        self.namespace_index: int | None = None
        self._server: Server | None = None
        self._nodes: dict[str, Node] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._up_timer: asyncio.Task[None] | None = None
        self._ticks = 0
        self._lifecycle = asyncio.Lock()  # one boot or shutdown at a time
        self.alarms: dict[str, dict[str, Any]] = {}  # name -> severity, message, active, acked
        self._alarm_events: dict[str, list[Any]] = {}  # name -> its event generators, of the running server

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}"

    @property
    def is_up(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        async with self._lifecycle:
            if self._server is None:
                await self._boot()

    async def stop(self) -> None:
        self._cancel_timer()
        async with self._lifecycle:
            await self._shutdown()

    # ------------------------------------------------------------------ faults

    async def down(self, seconds: float | None = None) -> None:
        """Stop the server (power off); back after `seconds`, or at `up()` when None."""
        self._cancel_timer()
        async with self._lifecycle:
            await self._shutdown()
        if seconds is not None:
            self._up_timer = asyncio.create_task(self._up_after(seconds))

    async def up(self) -> None:
        self._cancel_timer()
        await self.start()

    async def slow(self, ms: int) -> None:
        """Delay every client read by `ms` milliseconds (0 = normal)."""
        if ms < 0:
            raise SimulatorError("slow: ms must be >= 0")
        self.slow_ms = ms

    async def degraded(
        self,
        fault_code: int = 1,
        service_level: int = 100,
        stale_heartbeat: bool = True,
        running: bool = False,
    ) -> None:
        """Answer, but unhealthy: a fault code, a low ServiceLevel, a frozen heartbeat, STOP."""
        if not 0 <= fault_code <= 0xFFFF or not 0 <= service_level <= 255:
            raise SimulatorError("degraded: fault_code is 0..65535 and service_level 0..255")
        self.fault_code = fault_code
        self.service_level = service_level
        self.stale_heartbeat = stale_heartbeat
        self.running = running
        await self._publish_health()

    async def set_version(self, software_version: str, build_number: str | None = None) -> None:
        self.software_version = software_version
        if build_number is not None:
            self.build_number = build_number
        if self._server is not None:
            await self._write_build_info(self._server)

    async def replace_certificate(self, certificate: Path, private_key: Path) -> None:
        """Boot again with another server certificate."""
        self.certificate, self.private_key = certificate, private_key
        await self.restart()

    async def restart(self) -> None:
        """Stop, then boot again on the same port (namespaces renumbered when shift_namespace is on)."""
        self._cancel_timer()
        async with self._lifecycle:
            await self._shutdown()
            await self._boot()

    async def clear(self) -> None:
        """Remove every fault and come up if down. The software version stays."""
        self.running = True
        self.fault_code = 0
        self.service_level = HEALTHY_SERVICE_LEVEL
        self.stale_heartbeat = False
        self.slow_ms = 0
        await self._publish_health()
        await self.up()

    async def raise_alarm(self, name: str, severity: int = 700, message: str = "") -> None:
        """An alarm condition `name` becomes active (unacknowledged) with the PLC's own `message`."""
        if not 1 <= severity <= 1000:
            raise SimulatorError("raise_alarm: severity is 1..1000")
        self.alarms[name] = {"severity": severity, "message": message or name, "active": True, "acked": False}
        await self._announce(name)

    async def acknowledge_alarm(self, name: str) -> None:
        self._alarm(name)["acked"] = True
        await self._announce(name)

    async def clear_alarm(self, name: str) -> None:
        """The alarm's cause is gone (it stays retained until acknowledged)."""
        self._alarm(name)["active"] = False
        await self._announce(name)

    def _alarm(self, name: str) -> dict[str, Any]:
        try:
            return self.alarms[name]
        except KeyError:
            raise SimulatorError(f"PLC {self.name} has no alarm {name!r}; it has {sorted(self.alarms)}") from None

    async def _announce(self, name: str) -> None:
        """Send the alarm's event from the PLC folder and from the Server object (a real server passes events
        up its notifier tree; asyncua delivers them to the emitting node's subscribers only)."""
        if self._server is None:
            return
        alarm = self.alarms[name]
        generators = self._alarm_events.get(name)
        if generators is None:
            server, idx = self._server, self.namespace_index or 0
            folder = _string_id(self.name, idx)
            generators = []
            for notifier, suffix in ((folder, ""), (server.nodes.server.nodeid, "@server")):
                generator = await server.get_event_generator(ObjectIds.OffNormalAlarmType, notifier)
                event = generator.event
                event.NodeId = _string_id(f"{self.name}.{name}{suffix}", idx)
                event.SourceNode, event.SourceName, event.ConditionName = folder, self.name, name
                generators.append(generator)
            self._alarm_events[name] = generators
        retain = alarm["active"] or not alarm["acked"]
        for generator in generators:
            event = generator.event
            event.Severity = alarm["severity"]
            setattr(event, "ActiveState/Id", alarm["active"])
            event.ActiveState = ua.LocalizedText("Active" if alarm["active"] else "Inactive")
            setattr(event, "AckedState/Id", alarm["acked"])
            event.AckedState = ua.LocalizedText("Acknowledged" if alarm["acked"] else "Unacknowledged")
            event.Retain = retain
            await generator.trigger(message=alarm["message"])
        if not retain:
            del self.alarms[name]
            del self._alarm_events[name]

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "endpoint": self.endpoint,
            "up": self.is_up,
            "namespace_uri": self.namespace_uri,
            "namespace_index": self.namespace_index,
            "heartbeat": self.heartbeat,
            "running": self.running,
            "fault_code": self.fault_code,
            "service_level": self.service_level,
            "stale_heartbeat": self.stale_heartbeat,
            "slow_ms": self.slow_ms,
            "software_version": self.software_version,
            "build_number": self.build_number,
            "boots": self.boots,
            "alarms": {name: dict(alarm) for name, alarm in self.alarms.items()},
        }

    # ------------------------------------------------------------------ server life

    async def _boot(self) -> None:
        server = await asyncio.to_thread(_initialised_server)
        server.disable_clock()  # our ticker writes CurrentTime; the built-in clock makes stop() wait 1 s
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"linewarden simulated PLC {self.name}")
        await self._secure(server)
        if self.shift_namespace:
            for i in range(1 + (self.boots + 1) % 2):
                await server.register_namespace(f"urn:linewarden:sim:filler:{i}")
        idx = await server.register_namespace(self.namespace_uri)
        await self._write_build_info(server)
        limit = server.get_node(_standard(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead))
        await limit.write_value(ua.Variant(self.max_nodes_per_read, ua.VariantType.UInt32))
        server.subscribe_server_callback(CallbackType.PreRead, self._before_read)

        folder = await server.nodes.objects.add_folder(_string_id(self.name, idx), self.name)
        await folder.set_event_notifier([ua.EventNotifier.SubscribeToEvents])  # its alarms can be watched
        initial: dict[str, ua.Variant] = {
            "Heartbeat": ua.Variant(self.heartbeat, ua.VariantType.UInt32),
            "Running": ua.Variant(self.running, ua.VariantType.Boolean),
            "FaultCode": ua.Variant(self.fault_code, ua.VariantType.UInt16),
            "Temperature": ua.Variant(0.0, ua.VariantType.Double),
            "Pressure": ua.Variant(0.0, ua.VariantType.Double),
            "Speed": ua.Variant(0.0, ua.VariantType.Double),
        }
        self._nodes = {
            browse_name: await folder.add_variable(_string_id(browse_name, idx), browse_name, value)
            for browse_name, value in initial.items()
        }
        for browse_name, units in (("Temperature", "°C"), ("Pressure", "bar")):  # Part 8 EUInformation
            eu = ua.EUInformation(NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
                                  DisplayName=ua.LocalizedText(units), Description=ua.LocalizedText(units))
            await self._nodes[browse_name].add_property(
                _string_id(f"{browse_name}.EngineeringUnits", idx), ua.QualifiedName("EngineeringUnits", 0), eu
            )
        self._nodes["ServiceLevel"] = server.get_node(_standard(ObjectIds.Server_ServiceLevel))
        self._nodes["ServerStatus"] = server.get_node(_standard(ObjectIds.Server_ServerStatus))
        self._nodes["CurrentTime"] = server.get_node(_standard(ObjectIds.Server_ServerStatus_CurrentTime))
        try:
            await server.start()
        except OSError as exc:
            raise SimulatorError(f"OPC UA PLC {self.name} cannot listen on {self.endpoint}: {exc}") from None
        self._server = server
        self.namespace_index = idx
        self.boots += 1
        await self._publish_health()
        await self._tick()
        self._ticker = asyncio.create_task(self._tick_forever(), name=f"opcua-plc-{self.name}")
        for alarm in list(self.alarms):
            await self._announce(alarm)

    async def _secure(self, server: Server) -> None:
        policies = [ua.SecurityPolicyType.NoSecurity]
        if self.certificate is not None and self.private_key is not None:
            policies = [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt, ua.SecurityPolicyType.Basic256Sha256_Sign]
            if self.allow_unsecured:
                policies.append(ua.SecurityPolicyType.NoSecurity)
            await server.load_certificate(str(self.certificate))
            await server.load_private_key(str(self.private_key))
        server.set_security_policy(policies)
        tokens: list[type] = []
        if self.users:
            tokens.append(ua.UserNameIdentityToken)
        if self.user_certificates:
            tokens.append(ua.X509IdentityToken)
        if tokens:
            server.set_identity_tokens(tokens)
        server.iserver.set_user_manager(_Users(self.users, self.user_certificates, anonymous=not tokens))

    async def _shutdown(self) -> None:
        server, self._server = self._server, None
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if server is not None:
            await server.stop()
        self._nodes = {}
        self._alarm_events = {}

    async def _write_build_info(self, server: Server) -> None:
        await server.set_build_info(
            "urn:linewarden:sim:plc",
            "linewarden simulators",
            f"Simulated PLC {self.name}",
            self.software_version,
            self.build_number,
            datetime.now(UTC),
        )

    async def _before_read(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        if not event.is_external:
            return
        params: ua.ReadParameters = event.request_params
        if self.max_nodes_per_read and len(params.NodesToRead) > self.max_nodes_per_read:
            raise ServiceError(StatusCodes.BadTooManyOperations)
        if self.slow_ms:
            await asyncio.sleep(self.slow_ms / 1000)

    async def _publish_health(self) -> None:
        if self._server is None:
            return
        await self._nodes["Running"].write_value(ua.Variant(self.running, ua.VariantType.Boolean))
        await self._nodes["FaultCode"].write_value(ua.Variant(self.fault_code, ua.VariantType.UInt16))
        await self._nodes["ServiceLevel"].write_value(ua.Variant(self.service_level, ua.VariantType.Byte))

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_period)
            await self._tick()

    async def _tick(self) -> None:
        self._ticks += 1
        if not self.stale_heartbeat:
            self.heartbeat = (self.heartbeat + 1) & 0xFFFFFFFF
        t = self._ticks
        values = {
            "Heartbeat": ua.Variant(self.heartbeat, ua.VariantType.UInt32),
            "Temperature": ua.Variant(62.0 + 4.0 * math.sin(t / 10), ua.VariantType.Double),
            "Pressure": ua.Variant(4.2 + 0.3 * math.sin(t / 7), ua.VariantType.Double),
            "Speed": ua.Variant(1450.0 + 25.0 * math.sin(t / 5) if self.running else 0.0, ua.VariantType.Double),
        }
        for browse_name, value in values.items():
            await self._nodes[browse_name].write_value(value)
        now = datetime.now(UTC)
        status = copy(await self._nodes["ServerStatus"].read_value())
        status.CurrentTime = now
        await self._nodes["ServerStatus"].write_value(status)
        await self._nodes["CurrentTime"].write_value(ua.Variant(now, ua.VariantType.DateTime))

    async def _up_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._up_timer = None
        with contextlib.suppress(SimulatorError):  # port taken meanwhile: stay down, status shows it
            await self.start()

    def _cancel_timer(self) -> None:
        if self._up_timer is not None and self._up_timer is not asyncio.current_task():
            self._up_timer.cancel()
        self._up_timer = None
