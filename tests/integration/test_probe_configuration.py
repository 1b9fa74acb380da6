"""Against the real simulators: a configuration mistake at a target's first connection is UNKNOWN with a
"configuration:" reason and a plant-IT configuration incident, never a vendor's DOWN; once the target has
worked the same fault is the vendor's. OPC UA subscriptions: the publishing interval follows the effective
poll interval, and data changes are dated at the server's source timestamp."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from agent.probes.base import Probe, ProbeResult
from agent.probes.context import ProbeContext
from agent.probes.opcua import OpcUaProbe, change_time
from collector.ticketing.plant_it import PLANT_IT
from collector.ticketing.router import decide
from linewarden.config.agent import Defaults, FlapConfig, SeverityMatrix
from linewarden.config.load import convert
from linewarden.debounce import Debouncer
from linewarden.domain import Criticality, State
from linewarden.incidents import IncidentTracker, TargetRef
from linewarden.wire import IncidentOpenedBody
from simulators.modbus_plc import ModbusPlc
from simulators.opcua_plc import HEALTHY_SERVICE_LEVEL, OpcUaPlc
from tests.integration.probe_helpers import fast_context, probe
from tests.integration.ticketing_helpers import book, contract
from tests.waiting import async_wait_until

URI = "urn:linewarden:sim:plc"


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    ctx = fast_context()
    yield ctx
    await ctx.close()


async def _judged(p: Probe[Any], polls: int = 3) -> tuple[list[ProbeResult], list[Any]]:
    """Poll `polls` times through a debouncer (threshold 3) and an incident tracker, as the agent does."""
    debouncer = Debouncer(fail_threshold=3, recover_threshold=2)
    tracker = IncidentTracker(
        {"t1": TargetRef("a1", Criticality.CRITICAL)}, SeverityMatrix(), lambda ms: True,
        FlapConfig(max_changes=4, window=timedelta(minutes=10)), lambda: "inc-1", site_link_hold_ms=0,
    )  # fmt: skip
    results, events = [], []
    for i in range(polls):
        r = await p.poll(time.time())
        results.append(r)
        tr = debouncer.observe(r.state, i * 1000, r.reason or "ok", r.cause, r.configuration)
        if tr is not None:
            events += tracker.process(i * 1000, {"t1": tr}, set())
    return results, events


def _configuration_incident(events: list[Any], cause: str) -> IncidentOpenedBody:
    assert [k for k, _ in events] == ["state_change", "incident_opened"], events
    change, opened = events[0][1], events[1][1]
    assert (change.from_, change.to, change.cause) == (State.UNKNOWN, State.UNKNOWN, cause)
    assert change.reason.startswith("configuration: ")
    assert isinstance(opened, IncidentOpenedBody) and (opened.kind, opened.cause) == ("configuration", cause)
    return opened


async def test_opcua_namespace_the_server_lacks_is_a_configuration_fault(context: ProbeContext) -> None:
    async with OpcUaPlc("plc") as plc:
        nodes = [{"name": "heartbeat", "namespace_uri": "urn:typo:plc", "identifier": "s=Heartbeat"}]
        results, events = await _judged(probe(context, type="opcua", endpoint=plc.endpoint, nodes=nodes))
    assert results[0].configuration == "config.unknown_namespace"
    assert "namespace urn:typo:plc is not on the server" in results[0].reason
    opened = _configuration_incident(events, "config.unknown_namespace")
    routes = decide(opened.kind, "plant-a", opened.asset, opened.opened_at, book(contract("c1", "v", ["a1"], None)), [])
    assert [(r.contract_id, r.decision) for r in routes] == [(PLANT_IT, "plant_it")], "plant IT, not the vendor"


async def test_opcua_unknown_node_is_a_configuration_fault(context: ProbeContext) -> None:
    async with OpcUaPlc("plc") as plc:
        nodes = [{"name": "fault", "namespace_uri": URI, "identifier": "s=NoSuchNode"}]
        results, events = await _judged(probe(context, type="opcua", endpoint=plc.endpoint, nodes=nodes))
        assert (results[0].state, results[0].cause) == (State.DEGRADED, "opcua.unknown_node")
        _configuration_incident(events, "config.unknown_node")


async def test_modbus_illegal_address_at_first_connection_then_after_working(context: ProbeContext) -> None:
    async with ModbusPlc("gw") as plc:
        illegal = [{"name": "status", "address": 5000}]
        results, events = await _judged(probe(context, type="modbus", host=plc.host, port=plc.port, points=illegal))
        assert results[0].cause == "modbus.exception.2"
        _configuration_incident(events, "config.illegal_address")

        # the same fault after the target has worked: the device's program changed, the vendor's
        p = probe(context, type="modbus", host=plc.host, port=plc.port, points=[{"name": "status", "address": 1}])
        debouncer = Debouncer(fail_threshold=1, recover_threshold=1)
        up = await p.poll(time.time())
        debouncer.observe(up.state, 0, "ok", up.cause, up.configuration)
        await plc.exception(2)
        bad = await p.poll(time.time())
        tr = debouncer.observe(bad.state, 1000, bad.reason, bad.cause, bad.configuration)
        assert tr is not None and (tr.to, tr.cause, tr.configuration) == (State.DEGRADED, "modbus.exception.2", False)


async def test_publishing_interval_follows_the_inherited_default_interval(context: ProbeContext) -> None:
    async with OpcUaPlc("plc") as plc:
        nodes = [{"name": "heartbeat", "namespace_uri": URI, "identifier": "s=Heartbeat", "subscribe": True}]
        defaults = convert(Defaults, {"interval": "4s", "timeout": "500ms"})
        p = probe(context, defaults, type="opcua", endpoint=plc.endpoint, nodes=nodes)
        assert isinstance(p, OpcUaProbe)
        assert (await p.poll(time.time())).state == State.UP
        assert p._subscription is not None
        assert p._subscription.parameters.RequestedPublishingInterval == 2000.0


async def test_subscribed_change_is_dated_at_its_source_timestamp(context: ProbeContext) -> None:
    async with OpcUaPlc("plc", heartbeat_period=0.1) as plc:
        nodes = [
            {"name": "heartbeat", "namespace_uri": URI, "identifier": "s=Heartbeat", "subscribe": True,
             "condition": {"must_change_within": "3s"}}
        ]  # fmt: skip
        defaults = convert(Defaults, {"interval": "1s", "timeout": "500ms"})
        p = probe(context, defaults, type="opcua", endpoint=plc.endpoint, nodes=nodes)
        assert (await p.poll(time.time())).state == State.UP
        await plc.degraded(fault_code=0, service_level=HEALTHY_SERVICE_LEVEL, stale_heartbeat=True, running=True)
        frozen_at = time.time()
        assert isinstance(p, OpcUaProbe)
        cache = p._cache.values

        def frozen_value_cached() -> bool:
            return [v.Value.Value if v.Value is not None else None for v in cache.values()] == [plc.heartbeat]

        await async_wait_until(frozen_value_cached, what="the frozen heartbeat in the subscription")
        # Polled 10 s later: the value is new to the checker, but the server says it changed at the freeze.
        result = await p.poll(frozen_at + 10)
        assert (result.state, result.cause) == (State.DEGRADED, "condition.heartbeat.stale")


def test_source_timestamps_out_of_bounds_fall_back_to_the_receive_time() -> None:
    from datetime import UTC, datetime

    received = 1_780_000_000.0
    at = datetime.fromtimestamp(received - 1.5, UTC)
    assert change_time(at, received, bound_s=2.0) == received - 1.5
    assert change_time(datetime.fromtimestamp(received - 60, UTC), received, bound_s=2.0) == received  # clock off
    assert change_time(datetime.fromtimestamp(received + 1, UTC), received, bound_s=2.0) == received  # ahead
    assert change_time(None, received, bound_s=2.0) == received
