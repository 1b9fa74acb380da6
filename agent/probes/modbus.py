"""Modbus TCP probe: reads the configured points in the fewest requests and checks their conditions."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING

from agent.conditions import ConditionChecker, Failure, worst
from agent.probes.base import Probe, ProbeResult
from agent.probes.modbus_link import ModbusFailure
from linewarden.config.targets import ModbusPoint, ModbusTarget
from linewarden.modbus_codec import decode_registers, register_width
from linewarden.modbus_plan import Limits, ReadRequest, Span, plan_reads

if TYPE_CHECKING:
    from agent.probes.context import ProbeContext


def plan_for(target: ModbusTarget) -> list[ReadRequest]:
    spans = [
        Span(p.name, p.unit if p.unit is not None else target.unit, p.table, p.address, register_width(p.datatype))
        for p in target.points
    ]
    limits = Limits(target.max_registers_per_request, target.max_bits_per_request, target.max_gap)
    return plan_reads(spans, limits)


def decode_point(point: ModbusPoint, words: list[int] | list[bool]) -> bool | int | float:
    if point.datatype == "bool":
        return bool(words[0])
    value = decode_registers([int(w) for w in words], point.datatype, point.byte_order, point.word_order)
    return value * point.scale if point.scale != 1.0 else value


class ModbusProbe(Probe[ModbusTarget]):
    kind = "modbus"

    def __init__(self, target: ModbusTarget, timeout: timedelta, context: ProbeContext, interval: timedelta) -> None:
        super().__init__(target, timeout, context, interval)
        self.requests = plan_for(target)
        self._points = {p.name: p for p in target.points}
        self._link = context.modbus_link(target.host, target.port, self.timeout_s, self.interval_s)
        self._checker = ConditionChecker()

    def poll_budget(self) -> float:
        pause = self.target.pause_between_requests.total_seconds()
        return len(self.requests) * (self.timeout_s + 0.5 + pause) + self.timeout_s + 1.0

    async def poll(self, now: float) -> ProbeResult:
        started = time.perf_counter()
        pause = self.target.pause_between_requests.total_seconds()
        values: dict[str, bool | int | float] = {}
        failures: list[Failure] = []
        dead_units: set[int] = set()
        for request in self.requests:
            if request.unit in dead_units:
                continue
            try:
                words = await self._link.read(request, pause)
            except ModbusFailure as exc:
                failures.append(Failure(exc.state, exc.reason, exc.cause, exc.configuration))
                if exc.kind == "connection":
                    break
                if exc.kind == "timeout":
                    dead_units.add(request.unit)  # one silent unit must not stall the others for a whole scan
                continue
            for span in request.spans:
                values[span.name] = decode_point(self._points[span.name], words[request.slice_of(span)])
        latency = (time.perf_counter() - started) * 1000
        for name, value in values.items():
            broken = self._checker.check(name, value, self._points[name].condition, now)
            if broken is not None:
                failures.append(broken)
        return ProbeResult.of(worst(failures), latency, values)
