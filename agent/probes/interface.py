"""Interface check: the version an interface advertises against the pinned one, and that exchanges go on.

HTTP: one GET of `url`; the JSON pointers pick the advertised version and the last exchange time. OPC UA: the
node's DataType (by its browse name) and EngineeringUnits (the EUInformation display name), read once per
session (they change with a new program, which a restart or a new session goes with), and its Value's
source timestamp on every poll. The OPC UA session is shared with the endpoint's unsecured opcua targets.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from agent.conditions import Failure, worst
from agent.probes.base import Probe, ProbeResult
from agent.probes.http import MISSING, _json, _transport_failure, walk
from linewarden.config.base import Secret
from linewarden.config.targets import InterfaceTarget, OpcUaTarget
from linewarden.domain import State

if TYPE_CHECKING:
    from agent.probes.context import ProbeContext

MAX_SHOWN = 80  # characters of a value from the peer shown in a reason


def json_pointer(data: Any, pointer: str) -> Any:
    """`data` at an RFC 6901 pointer ('/interface/schema_version'); MISSING when it is not there."""
    return walk(data, (raw.replace("~1", "/").replace("~0", "~") for raw in pointer.split("/")[1:]))


def exchange_time(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 time (UTC when it names no zone) or of a number of epoch seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and len(value) <= 64:
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return None
        return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()
    return None


def shown(value: Any) -> str:
    text = "".join(c if c.isprintable() else " " for c in str(value))
    return repr(text[:MAX_SHOWN])


def stale(what: str, at: float, now: float, max_age: timedelta) -> Failure | None:
    """DEGRADED when the last exchange at `at` lies more than `max_age` before `now`."""
    age = now - at
    if age <= max_age.total_seconds():
        return None
    limit = max_age.total_seconds()
    return Failure(State.DEGRADED, f"{what} {age:.0f} s ago (max {limit:g} s)", "interface.stale")


def pinned(what: str, seen: str, expected: str) -> Failure | None:
    if seen == expected:
        return None
    return Failure(State.DEGRADED, f"{what} {shown(seen)}, pinned {expected!r}", "interface.mismatch")


class InterfaceProbe(Probe[InterfaceTarget]):
    kind = "interface"

    def __init__(self, target: InterfaceTarget, timeout: timedelta, context: ProbeContext, interval: timedelta) -> None:
        super().__init__(target, timeout, context, interval)
        self._opcua: _OpcUaInterface | None = None
        if target.endpoint is not None:
            self._opcua = _OpcUaInterface(target, context, self.timeout_s, self.interval_s)
        else:
            self._client = context.http_client(target.verify_tls, target.ca_file, [target.url or ""])

    async def poll(self, now: float) -> ProbeResult:
        if self._opcua is not None:
            return await self._opcua.poll(now)
        return await self._poll_http(now)

    async def _poll_http(self, now: float) -> ProbeResult:
        target = self.target
        assert target.url is not None
        started = time.perf_counter()
        try:
            headers = {k: v.reveal() if isinstance(v, Secret) else v for k, v in target.headers.items()}
        except ValueError as exc:
            return ProbeResult(State.UNKNOWN, f"header secret: {exc}", cause="config.secret_unavailable")
        try:
            response = await self._client.get(target.url, headers=headers, timeout=self.timeout_s)
        except httpx.TimeoutException:
            return ProbeResult(State.DOWN, f"no answer within {self.timeout_s:g} s", cause="http.timeout")
        except httpx.HTTPError as exc:
            reason, cause = _transport_failure(exc)
            return ProbeResult(State.DOWN, reason, cause=cause)
        latency = (time.perf_counter() - started) * 1000
        if not response.is_success:
            reason = f"HTTP {response.status_code} {response.reason_phrase}".strip()
            return ProbeResult(State.DOWN, reason, latency, cause=f"http.status.{response.status_code}")
        body = _json(response)
        failures: list[Failure] = []
        values: dict[str, Any] = {}
        versions: dict[str, str] = {}
        if target.version_pointer is not None and target.expected_version is not None:
            version = json_pointer(body, target.version_pointer)
            if version is MISSING or version is None or isinstance(version, dict | list):
                missing = f"no version at {target.version_pointer}"
                failures.append(Failure(State.DEGRADED, missing, "interface.no_version"))
            else:
                versions["interface_version"] = str(version)[:200]
                failure = pinned("interface version", str(version), target.expected_version)
                if failure is not None:
                    failures.append(failure)
        if target.last_exchange_pointer is not None and target.max_age is not None:
            at = exchange_time(json_pointer(body, target.last_exchange_pointer))
            if at is None:
                failures.append(Failure(
                    State.DEGRADED, f"no exchange time at {target.last_exchange_pointer}", "interface.no_exchange"
                ))
            else:
                values["last_exchange_age_s"] = round(now - at, 3)
                failure = stale("last exchange", at, now, target.max_age)
                if failure is not None:
                    failures.append(failure)
        return ProbeResult.of(worst(failures), latency, values, versions)


class _OpcUaInterface:
    """The OPC UA side: DataType and EngineeringUnits per session, the Value's timestamp per poll."""

    def __init__(self, target: InterfaceTarget, context: ProbeContext, timeout_s: float, interval_s: float) -> None:
        assert target.endpoint is not None and target.node is not None
        self.target = target
        self.node = target.node
        self.timeout_s = timeout_s
        settings = OpcUaTarget(id=target.id, asset=target.asset, endpoint=target.endpoint)
        self.session = context.opcua_session(settings, timeout_s, interval_s)
        self._generation = -1
        self._node_id: Any = None
        self._described: tuple[str | None, str | None] = (None, None)  # data type name, engineering units

    async def poll(self, now: float) -> ProbeResult:
        from agent.probes.asyncua_client import ua
        from agent.probes.opcua_session import OpcUaFailure

        started = time.perf_counter()
        try:
            client = await self.session.client()
            if self._generation != self.session.generation:
                index = self.session.namespace_index(self.node.namespace_uri)
                self._node_id = ua.NodeId.from_string(f"ns={index};{self.node.identifier}")
                self._described = await self._describe(client)
                self._generation = self.session.generation
            (value,) = await self.session.read([self._node_id])
        except OpcUaFailure as exc:
            lost = Failure(exc.state, str(exc), exc.cause, exc.configuration)
            return ProbeResult.of(lost, (time.perf_counter() - started) * 1000)
        latency = (time.perf_counter() - started) * 1000
        failures: list[Failure] = []
        if value.StatusCode is not None and value.StatusCode.is_bad():
            name = value.StatusCode.name
            reason = f"node {self.node.identifier}: {name}"
            return ProbeResult(State.DEGRADED, reason, latency, cause="opcua.bad_status")
        datatype, units = self._described
        target = self.target
        if target.expected_datatype is not None:
            failure = pinned("data type", datatype or "unknown", target.expected_datatype)
            if failure is not None:
                failures.append(failure)
        if target.expected_engineering_units is not None:
            if units is None:
                expected = target.expected_engineering_units
                reason = f"node {self.node.identifier} has no EngineeringUnits, pinned {expected!r}"
                failures.append(Failure(State.DEGRADED, reason, "interface.mismatch"))
            else:
                failure = pinned("engineering units", units, target.expected_engineering_units)
                if failure is not None:
                    failures.append(failure)
        values: dict[str, Any] = {}
        if target.max_age is not None:
            stamp = value.SourceTimestamp or value.ServerTimestamp
            if stamp is None:
                failures.append(Failure(State.DEGRADED, "the value has no timestamp", "interface.no_exchange"))
            else:
                at = (stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)).timestamp()
                values["last_exchange_age_s"] = round(now - at, 3)
                failure = stale("value last changed", at, now, target.max_age)
                if failure is not None:
                    failures.append(failure)
        versions = {k: v for k, v in (("datatype", datatype), ("engineering_units", units)) if v is not None}
        return ProbeResult.of(worst(failures), latency, values, versions)

    async def _describe(self, client: Any) -> tuple[str | None, str | None]:
        """The node's DataType browse name and EngineeringUnits display name (None when it has none)."""
        import asyncio

        from agent.probes.asyncua_client import UaStatusCodeError, ua
        from agent.probes.opcua_session import OpcUaFailure

        node = client.get_node(self._node_id)
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                data_type = await node.read_data_type()
                datatype = (await client.get_node(data_type).read_browse_name()).Name
                try:
                    eu = await (await node.get_child(["0:EngineeringUnits"])).read_value()
                except UaStatusCodeError:
                    return datatype, None
        except UaStatusCodeError as exc:
            raise OpcUaFailure(
                f"node {self.node.identifier}: {ua.StatusCode(exc.code).name}", "opcua.bad_status"
            ) from None
        except Exception as exc:
            await self.session.drop(client)
            raise OpcUaFailure(f"connection lost ({type(exc).__name__})", "opcua.connection_lost") from None
        text = getattr(getattr(eu, "DisplayName", None), "Text", None)
        return datatype, str(text)[:200] if text is not None else None
