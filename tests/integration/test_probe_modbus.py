"""Modbus probe against the simulated gateway: values, conditions, the three failure kinds, recovery."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from agent.probes.context import ProbeContext
from agent.probes.modbus import ModbusProbe
from agent.probes.registry import safe_poll
from linewarden.domain import State
from simulators.modbus_plc import ModbusPlc
from tests.integration.probe_helpers import fast_context, poll_until, probe

POINTS = [
    {"name": "heartbeat", "address": 0, "condition": {"must_change_within": "3s"}},
    {"name": "status", "address": 1, "condition": {"equals": 1, "fail_state": "DOWN"}},
    {"name": "fault_code", "address": 2, "condition": {"equals": 0}},
    {"name": "counter", "address": 10, "datatype": "int32"},
    {"name": "temperature", "address": 12, "datatype": "float32", "condition": {"min": 0, "max": 80}},
    {"name": "offset", "address": 14, "datatype": "int16"},
    {"name": "running", "table": "coil", "address": 0, "datatype": "bool"},
]


@pytest.fixture
async def plc() -> AsyncIterator[ModbusPlc]:
    async with ModbusPlc("gw", heartbeat_period=0.2) as sim:
        yield sim


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    ctx = fast_context()
    yield ctx
    await ctx.close()


def modbus(context: ProbeContext, plc: ModbusPlc, **extra) -> ModbusProbe:
    fields = {"type": "modbus", "host": plc.host, "port": plc.port, "points": POINTS, **extra}
    made = probe(context, **fields)
    assert isinstance(made, ModbusProbe)
    return made


async def test_healthy_unit_is_up_with_decoded_values(plc: ModbusPlc, context: ProbeContext) -> None:
    p = modbus(context, plc)
    assert [(r.table, r.address, r.count) for r in p.requests] == [("coil", 0, 1), ("holding", 0, 15)]
    result = await p.poll(time.time())
    assert (result.state, result.reason) == (State.UP, "")
    expected = plc.snapshot(1)
    assert result.values["counter"] == expected["counter"] > 65535
    assert result.values["offset"] == expected["offset"] < 0
    assert result.values["temperature"] == pytest.approx(expected["temperature"], abs=0.01)
    assert result.values["running"] is True
    assert context.modbus_links[f"{plc.host}:{plc.port}"].requests_sent == 2


async def test_little_word_order(context: ProbeContext) -> None:
    async with ModbusPlc("gw-le", word_order="little") as plc:
        points = [{"name": "counter", "address": 10, "datatype": "int32", "word_order": "little"}]
        result = await modbus(context, plc, points=points).poll(time.time())
        assert result.values["counter"] == plc.snapshot(1)["counter"]


async def test_degraded_unit_fails_its_conditions(plc: ModbusPlc, context: ProbeContext) -> None:
    p = modbus(context, plc)
    start = time.time()
    assert (await p.poll(start)).state == State.UP
    await plc.degraded(unit=1, fault_code=7, stale_heartbeat=True, running=True)
    result = await p.poll(start + 1)
    assert (result.state, result.reason) == (State.DEGRADED, "fault_code is 7, expected 0")
    result = await p.poll(start + 10)  # heartbeat frozen for longer than 3 s
    assert result.state == State.DEGRADED
    assert "heartbeat has not changed for" in result.reason
    await plc.degraded(unit=1, fault_code=7, stale_heartbeat=False, running=False)
    result = await p.poll(start + 11)
    assert result.state == State.DOWN
    assert result.reason.startswith("status is 0, expected 1")


async def test_three_failure_kinds_have_distinct_reasons(plc: ModbusPlc, context: ProbeContext) -> None:
    p = modbus(context, plc)
    await plc.exception(2, unit=1)
    exception = await p.poll(time.time())
    assert exception.reason.startswith("modbus exception 2 (illegal data address) from unit 1")
    assert exception.state == State.DEGRADED  # the device answers; it refuses the request

    await plc.clear()
    await plc.delay(1500)
    timeout = await p.poll(time.time())
    assert (timeout.state, timeout.reason) == (State.DOWN, "no answer within 0.5 s from unit 1")

    await plc.clear()
    await plc.stop_listening()
    refused = await p.poll(time.time())
    assert (refused.state, refused.reason) == (State.DOWN, "connection refused")
    assert len({exception.reason, timeout.reason, refused.reason}) == 3


async def test_gateway_exception_for_a_missing_unit_is_down(plc: ModbusPlc, context: ProbeContext) -> None:
    result = await modbus(context, plc, unit=9).poll(time.time())
    assert result.state == State.DOWN
    assert result.reason.startswith("modbus exception 11 (gateway target device failed to respond) from unit 9")


async def test_one_failing_unit_does_not_stop_the_others(plc: ModbusPlc, context: ProbeContext) -> None:
    points = [
        {"name": "u1_status", "unit": 1, "address": 1},
        {"name": "u2_status", "unit": 2, "address": 1},
        {"name": "u3_status", "unit": 3, "address": 1},
    ]
    await plc.exception(4, unit=2)
    result = await modbus(context, plc, points=points).poll(time.time())
    assert result.state == State.DOWN
    assert result.reason == "modbus exception 4 (server device failure) from unit 2"
    assert result.values == {"u1_status": 1, "u3_status": 1}


async def test_targets_behind_one_gateway_share_one_connection(plc: ModbusPlc, context: ProbeContext) -> None:
    probes = [modbus(context, plc, unit=u, id=f"unit{u}") for u in (1, 2, 3)]
    for p in probes:
        assert (await p.poll(time.time())).state == State.UP
    assert list(context.modbus_links) == [f"{plc.host}:{plc.port}"]
    assert context.modbus_links[f"{plc.host}:{plc.port}"].connects == 1


async def test_recovers_after_connections_are_dropped(plc: ModbusPlc, context: ProbeContext) -> None:
    p = modbus(context, plc)
    assert (await p.poll(time.time())).state == State.UP
    await plc.drop_connections()
    await poll_until(p, State.UP, timeout=5, what="probe back UP after the drop")
    assert context.modbus_links[f"{plc.host}:{plc.port}"].connects == 2


async def test_recovers_after_gateway_outage(plc: ModbusPlc, context: ProbeContext) -> None:
    p = modbus(context, plc)
    await plc.down()
    assert (await safe_poll(p, time.time())).reason == "connection refused"
    await plc.up()
    await poll_until(p, State.UP, timeout=5, what="probe back UP after the outage")


async def test_pause_between_requests_is_kept(plc: ModbusPlc, context: ProbeContext) -> None:
    points = [{"name": "a", "address": 0}, {"name": "b", "address": 90}]
    p = modbus(context, plc, points=points, pause_between_requests="300ms")
    assert len(p.requests) == 2
    started = time.monotonic()
    assert (await p.poll(time.time())).state == State.UP
    assert time.monotonic() - started >= 0.3
