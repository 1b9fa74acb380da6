"""OPC UA probe: server state, service level, build info and configured nodes, all in one Read request.

Nodes are named by namespace URI; their index is resolved again after every (re)connect. Nodes marked
`subscribe` are watched through a subscription (recreated after every reconnect) and read from its cache;
its publishing interval is half the target's effective poll interval (0.1 s to 10 s). A data change is dated
at the server's SourceTimestamp when that lies no further from the agent's receive time than the publishing
interval plus the timeout (and never after the receipt); otherwise (server clock off, a value replayed after
a reconnect) at the receive time.

With `alarms`, an event subscription to the server's Alarms & Conditions (agent.probes.opcua_alarms) feeds an
alarm book; the alarms its rules match set the target's state, with the PLC's alarm message in the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.conditions import ConditionChecker, Failure, worst
from agent.probes.asyncua_client import DataChangeNotif, ObjectIds, StatusCodes, Subscription, ua
from agent.probes.base import Probe, ProbeResult
from agent.probes.opcua_alarms import AlarmBook, alarm_failures
from agent.probes.opcua_session import OpcUaFailure, standard_node
from agent.probes.opcua_trust import fingerprint
from linewarden.config.targets import OpcUaNode, OpcUaTarget
from linewarden.domain import State
from linewarden.errors import ProbeError

if TYPE_CHECKING:
    from agent.probes.context import ProbeContext

SERVER_STATE = standard_node(ObjectIds.Server_ServerStatus_State)
SERVICE_LEVEL = standard_node(ObjectIds.Server_ServiceLevel)
SOFTWARE_VERSION = standard_node(ObjectIds.Server_ServerStatus_BuildInfo_SoftwareVersion)
BUILD_NUMBER = standard_node(ObjectIds.Server_ServerStatus_BuildInfo_BuildNumber)

# A server that says it is not serving data is down; one in test or suspended mode still answers.
_DEGRADED_SERVER_STATES = {ua.ServerState.Suspended, ua.ServerState.Test}
# A node id the server does not know: the config's mistake until the target has been seen working.
_UNKNOWN_NODE_CODES = {StatusCodes.BadNodeIdUnknown, StatusCodes.BadNodeIdInvalid}


def change_time(source: datetime | None, received: float, bound_s: float) -> float:
    """When a subscribed value changed (epoch seconds): its source timestamp if within `bound_s` before the
    agent's receive time (a later one counts as the receipt), else the receipt."""
    if source is None:
        return received
    at = source.timestamp() if source.tzinfo is not None else source.replace(tzinfo=UTC).timestamp()
    return min(at, received) if abs(received - at) <= bound_s else received


class _SubscriptionCache:
    """Keeps the latest DataValue per node from data change notifications, with when it changed."""

    def __init__(self, bound_s: float) -> None:
        self.bound_s = bound_s
        self.values: dict[ua.NodeId, ua.DataValue] = {}
        self.changed_at: dict[ua.NodeId, float] = {}

    def datachange_notification(self, node: Any, val: Any, data: DataChangeNotif) -> None:
        value = data.monitored_item.Value
        self.values[node.nodeid] = value
        self.changed_at[node.nodeid] = change_time(value.SourceTimestamp, time.time(), self.bound_s)

    def status_change_notification(self, status: Any) -> None:
        self.clear()

    def clear(self) -> None:
        self.values.clear()
        self.changed_at.clear()


class OpcUaProbe(Probe[OpcUaTarget]):
    kind = "opcua"

    def __init__(self, target: OpcUaTarget, timeout: timedelta, context: ProbeContext, interval: timedelta) -> None:
        super().__init__(target, timeout, context, interval)
        self.session = context.opcua_session(target, self.timeout_s, self.interval_s)
        self.publishing_interval_s = min(max(self.interval_s / 2, 0.1), 10.0)
        self._checker = ConditionChecker()
        self._generation = -1
        self._node_ids: dict[str, ua.NodeId] = {}
        self._cache = _SubscriptionCache(self.publishing_interval_s + self.timeout_s)
        self._subscription: Subscription | None = None
        self.subscriptions_created = 0
        self.alarm_book = AlarmBook()
        self._alarm_subscription: Subscription | None = None

    async def poll(self, now: float) -> ProbeResult:
        started = time.perf_counter()
        try:
            await self.session.client()
            if self._generation != self.session.generation:
                await self._on_new_session()
            reads = self._reads()
            data = dict(zip(reads, await self.session.read(list(reads.values())), strict=True))
        except OpcUaFailure as exc:
            lost = Failure(exc.state, str(exc), exc.cause, exc.configuration)
            refused = {"server_certificate_sha256": fingerprint(exc.certificate)} if exc.certificate else {}
            return ProbeResult.of(lost, (time.perf_counter() - started) * 1000, refused)
        except ProbeError as exc:
            return ProbeResult(State.DOWN, str(exc), (time.perf_counter() - started) * 1000, cause="opcua.error")
        latency = (time.perf_counter() - started) * 1000
        failures = self._server_failures(data)
        values: dict[str, Any] = {}
        for node in self.target.nodes:
            node_id = self._node_ids[node.name]
            value: ua.DataValue | None
            if node.name in data:
                value, changed_at = data[node.name], None
            else:
                value, changed_at = self._cache.values.get(node_id), self._cache.changed_at.get(node_id)
            failure = self._node_failure(node, value, values, now, changed_at)
            if failure is not None:
                failures.append(failure)
        if self.target.alarms is not None:
            alarms = list(self.alarm_book.alarms.values())
            failures += alarm_failures(alarms, self.target.alarms.rules)
            values["alarms"] = len(alarms)
        versions = self._versions(data) | self._node_versions(data)
        return ProbeResult.of(worst(failures), latency, values, versions)

    def _reads(self) -> dict[str, ua.NodeId]:
        reads: dict[str, ua.NodeId] = {}
        if self.target.check_server_state:
            reads["@state"] = SERVER_STATE
        if self.target.min_service_level is not None:
            reads["@service_level"] = SERVICE_LEVEL
        if self.target.build_info:
            reads["@software_version"] = SOFTWARE_VERSION
            reads["@build_number"] = BUILD_NUMBER
        for node in self.target.nodes:
            node_id = self._node_ids[node.name]
            if not node.subscribe or node_id not in self._cache.values:
                reads[node.name] = node_id
        for v in self.target.version_nodes:
            reads[f"@version:{v.what}"] = self._node_ids[f"@version:{v.what}"]
        return reads

    async def _on_new_session(self) -> None:
        self._node_ids = {
            node.name: ua.NodeId.from_string(f"ns={self.session.namespace_index(node.namespace_uri)};{node.identifier}")
            for node in self.target.nodes
        } | {
            f"@version:{v.what}": ua.NodeId.from_string(
                f"ns={self.session.namespace_index(v.namespace_uri)};{v.identifier}"
            )
            for v in self.target.version_nodes
        }
        self._cache.clear()
        self._subscription = None
        watched = [self._node_ids[n.name] for n in self.target.nodes if n.subscribe]
        if watched:
            client = await self.session.client()
            try:
                self._subscription = await client.create_subscription(self.publishing_interval_s * 1000, self._cache)
                await self._subscription.subscribe_data_change([client.get_node(n) for n in watched])
            except Exception as exc:
                await self.session.drop(client)
                raise OpcUaFailure(f"cannot subscribe: {exc!r}", "opcua.subscribe_failed") from None
            self.subscriptions_created += 1
        if self.target.alarms is not None:
            await self._watch_alarms()
        self._generation = self.session.generation

    async def _watch_alarms(self) -> None:
        assert self.target.alarms is not None
        self.alarm_book.clear()
        self._alarm_subscription = None
        client = await self.session.client()
        sources = [
            ua.NodeId.from_string(f"ns={self.session.namespace_index(s.namespace_uri)};{s.identifier}")
            for s in self.target.alarms.sources
        ] or [standard_node(ObjectIds.Server)]
        try:
            subscription = await client.create_subscription(self.publishing_interval_s * 1000, self.alarm_book)
            for source in sources:
                await subscription.subscribe_alarms_and_conditions(  # its fields include Active/AckedState
                    client.get_node(source), standard_node(ObjectIds.AlarmConditionType)
                )
        except Exception as exc:
            await self.session.drop(client)
            raise OpcUaFailure(f"cannot subscribe to alarms: {exc!r}", "opcua.subscribe_failed") from None
        self._alarm_subscription = subscription
        # The alarms active before this session: servers without ConditionRefresh only report new ones.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                client.get_node(standard_node(ObjectIds.ConditionType)).call_method(
                    standard_node(ObjectIds.ConditionType_ConditionRefresh),
                    ua.Variant(subscription.subscription_id, ua.VariantType.UInt32),
                ),
                self.timeout_s,
            )

    def _server_failures(self, data: dict[str, ua.DataValue]) -> list[Failure]:
        failures: list[Failure] = []
        state = _good_value(data.get("@state"))
        if state is not None and state != ua.ServerState.Running:
            name = ua.ServerState(state).name
            level = State.DEGRADED if state in _DEGRADED_SERVER_STATES else State.DOWN
            failures.append(Failure(level, f"server state {name}", "opcua.server_state"))
        level_value = _good_value(data.get("@service_level"))
        minimum = self.target.min_service_level
        if minimum is not None and level_value is not None and int(level_value) < minimum:
            failures.append(
                Failure(State.DEGRADED, f"service level {level_value} below {minimum}", "opcua.service_level")
            )
        return failures

    def _node_failure(
        self,
        node: OpcUaNode,
        value: ua.DataValue | None,
        values: dict[str, Any],
        now: float,
        changed_at: float | None,
    ) -> Failure | None:
        fail_state = node.condition.fail_state
        if value is None:
            return Failure(fail_state, f"node {node.identifier}: no value yet", "opcua.no_value")
        if value.StatusCode is not None and value.StatusCode.is_bad():
            reason = f"node {node.identifier}: {value.StatusCode.name}"
            if value.StatusCode.value in _UNKNOWN_NODE_CODES:
                return Failure(fail_state, reason, "opcua.unknown_node", configuration="config.unknown_node")
            return Failure(fail_state, reason, "opcua.bad_status")
        plain = value.Value.Value if value.Value is not None else None
        values[node.name] = plain
        return self._checker.check(node.name, plain, node.condition, now, changed_at)

    @staticmethod
    def _versions(data: dict[str, ua.DataValue]) -> dict[str, str]:
        versions: dict[str, str] = {}
        for key, name in (("@software_version", "software_version"), ("@build_number", "build_number")):
            value = _good_value(data.get(key))
            if value:
                versions[name] = str(value)
        return versions

    def _node_versions(self, data: dict[str, ua.DataValue]) -> dict[str, str]:
        found = {v.what: _good_value(data.get(f"@version:{v.what}")) for v in self.target.version_nodes}
        return {what: str(value).strip()[:200] for what, value in found.items() if value not in (None, "")}

    async def close(self) -> None:
        for subscription in (self._subscription, self._alarm_subscription):
            if subscription is not None:
                # the session may be gone already; the server drops the subscription with it
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(subscription.delete(), self.timeout_s)
        self._subscription = self._alarm_subscription = None


def _good_value(value: ua.DataValue | None) -> Any:
    if value is None or (value.StatusCode is not None and not value.StatusCode.is_good()):
        return None
    return value.Value.Value if value.Value is not None else None
