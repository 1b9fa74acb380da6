"""Modbus RTU: on a serial line (a socat pseudo-terminal pair) and framed over TCP, against the simulator."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any, Final, Literal

import pytest

from agent.probes.context import ProbeContext
from agent.probes.modbus import ModbusProbe
from agent.probes.registry import safe_poll
from linewarden.domain import State
from linewarden.modbus_timing import frame_gap_s
from simulators.modbus_plc import ModbusPlc
from simulators.serial_line import PtyPair, socat_binary
from tests.integration.probe_helpers import fast_context, probe

BAUD = 9600
SLOW_BAUD = 1200  # its 3.5-character gap (29 ms at 8N1) is well above the loop's own turnaround
PARITY: Final[Literal["N"]] = "N"  # a Linux pseudo-terminal refuses parity once the port is configured
POINTS = [{"name": "status", "address": 1}, {"name": "counter", "address": 60}]  # two requests per poll
needs_socat = pytest.mark.skipif(socat_binary() is None, reason="socat is not installed (apt-get install socat)")


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    ctx = fast_context()
    yield ctx
    await ctx.close()


@pytest.fixture
async def line(request: pytest.FixtureRequest) -> AsyncIterator[tuple[PtyPair, ModbusPlc]]:
    baudrate = getattr(request, "param", BAUD)
    async with PtyPair() as pair, ModbusPlc(
        "rs485", framer="rtu", serial_port=pair.device, baudrate=baudrate, parity=PARITY, heartbeat_period=0.2
    ) as plc:
        yield pair, plc


def on_line(context: ProbeContext, port: str, unit: int, baudrate: int = BAUD, **extra: Any) -> ModbusProbe:
    fields: dict[str, Any] = {
        "type": "modbus", "transport": "serial", "serial_port": port, "baudrate": baudrate, "parity": PARITY,
        "unit": unit,
              "id": f"unit{unit}", "timeout": "300ms", "points": POINTS, **extra,
    }
    made = probe(context, **fields)
    assert isinstance(made, ModbusProbe)
    return made


@needs_socat
@pytest.mark.parametrize("line", [SLOW_BAUD], indirect=True)
async def test_targets_on_one_serial_line_take_turns_with_the_line_gap(
    line: tuple[PtyPair, ModbusPlc], context: ProbeContext
) -> None:
    pair, plc = line
    first, second = on_line(context, pair.host, 1, SLOW_BAUD), on_line(context, pair.host, 2, SLOW_BAUD)
    results = await asyncio.gather(first.poll(time.time()), second.poll(time.time()))
    assert [(r.state, r.reason) for r in results] == [(State.UP, ""), (State.UP, "")]
    assert results[1].values["status"] == plc.snapshot(2)["status"] == 1
    assert list(context.modbus_links) == [f"serial {pair.host}"]
    frames = list(plc.frames)
    assert [unit for _, _, unit in frames] == [1, 2, 1, 2]  # one request at a time, in turn
    gap = frame_gap_s(SLOW_BAUD, PARITY, 1)
    idle = [nxt[0] - prev[1] for prev, nxt in itertools.pairwise(frames)]
    assert min(idle) >= gap, f"line idle {min(idle) * 1000:.2f} ms between frames, less than 3.5 characters"


@needs_socat
async def test_a_silent_unit_does_not_starve_the_others(
    line: tuple[PtyPair, ModbusPlc], context: ProbeContext
) -> None:
    pair, plc = line
    silent, healthy = on_line(context, pair.host, 1), on_line(context, pair.host, 2)
    await plc.silence(1)
    for _ in range(2):
        quiet, fine = await asyncio.gather(safe_poll(silent, time.time()), safe_poll(healthy, time.time()))
        assert (quiet.state, quiet.reason) == (State.DOWN, "no answer within 0.3 s from unit 1")
        assert (fine.state, fine.reason) == (State.UP, "")
    link = context.modbus_links[f"serial {pair.host}"]
    assert link.connects == 1  # the port stays open through the silence
    await plc.clear()
    assert (await silent.poll(time.time())).state == State.UP


async def test_missing_serial_port_is_down_with_the_reason(context: ProbeContext) -> None:
    result = await on_line(context, "/dev/linewarden-no-such-port", 1).poll(time.time())
    assert result.state == State.DOWN
    assert result.reason.startswith("cannot open serial port /dev/linewarden-no-such-port")
    assert result.cause == "modbus.serial_unavailable"


async def test_rtu_over_tcp_reads_and_survives_a_silent_unit(context: ProbeContext) -> None:
    async with ModbusPlc("device-server", framer="rtu") as plc:
        fields: dict[str, Any] = {"type": "modbus", "transport": "rtu_over_tcp", "host": plc.host, "port": plc.port,
                  "timeout": "300ms", "points": POINTS}
        first = probe(context, **fields, unit=1, id="u1")
        third = probe(context, **fields, unit=3, id="u3")
        result = await first.poll(time.time())
        assert (result.state, result.values["status"]) == (State.UP, 1)
        await plc.silence(1)
        assert (await first.poll(time.time())).reason == "no answer within 0.3 s from unit 1"
        assert (await third.poll(time.time())).state == State.UP
        assert context.modbus_links[f"{plc.host}:{plc.port}"].connects == 1
