"""Modbus probe (TCP, RTU over TCP, RTU on a serial port): reads the configured points in the fewest
requests and checks their conditions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from agent.conditions import BlockChecks, ConditionChecker, Failure, worst
from agent.probes.base import Probe, ProbeResult
from agent.probes.modbus_link import ModbusFailure
from linewarden.config.targets import ModbusPoint, ModbusTarget, VersionRegisters
from linewarden.modbus_codec import BlockDecoder, Field, register_width
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


def register_text(words: Sequence[int]) -> str:
    """ASCII text in registers, two characters each, high byte first; trailing NULs and spaces dropped, other
    unprintable bytes shown as '?'."""
    raw = b"".join(int(w & 0xFFFF).to_bytes(2, "big") for w in words).rstrip(b"\x00 ")
    return "".join(chr(b) if 32 <= b < 127 else "?" for b in raw)


def version_request(target: ModbusTarget, v: VersionRegisters) -> ReadRequest:
    unit = v.unit if v.unit is not None else target.unit
    return ReadRequest(unit, v.table, v.address, v.count, (Span(v.what, unit, v.table, v.address, v.count),))


class CompiledRequest:
    """One planned request with its points' decoding and conditions prepared once, not on every poll."""

    def __init__(self, request: ReadRequest, points: dict[str, ModbusPoint], checker: ConditionChecker) -> None:
        self.request = request
        chosen = [points[span.name] for span in request.spans]
        self.names = tuple(p.name for p in chosen)
        offsets = [span.address - request.address for span in request.spans]
        self._bits = request.table in ("coil", "discrete")
        self._offsets = tuple(offsets)
        self._decoder = None if self._bits else BlockDecoder(
            [Field(o, p.datatype, p.byte_order, p.word_order, p.scale) for o, p in zip(offsets, chosen, strict=True)],
            request.count,
        )
        self.checks = BlockChecks(self.names, [p.condition for p in chosen], checker, numbers=not self._bits)

    def decode(self, words: Sequence[int] | Sequence[bool]) -> Sequence[bool | int | float]:
        if self._decoder is None:
            return [bool(words[o]) for o in self._offsets]
        return self._decoder.decode(words)


class ModbusProbe(Probe[ModbusTarget]):
    kind = "modbus"

    def __init__(self, target: ModbusTarget, timeout: timedelta, context: ProbeContext, interval: timedelta) -> None:
        super().__init__(target, timeout, context, interval)
        self.requests = plan_for(target)
        points = {p.name: p for p in target.points}
        checker = ConditionChecker()
        self._compiled = [CompiledRequest(r, points, checker) for r in self.requests]
        self._link = context.modbus_link(target, self.timeout_s, self.interval_s)
        self._version_requests = [(v.what, version_request(target, v)) for v in target.version_registers]
        self._version_due = 0.0
        self._link.planned_requests += len(self.requests) + len(self._version_requests)

    def poll_budget(self) -> float:
        """Every request of every target on the line may be served before this poll's last one (they take
        turns), each holding the line for at most its timeout and the waits around it."""
        pause = self.target.pause_between_requests.total_seconds()
        return self._link.planned_requests * self._link.request_cost_s(pause) + self.timeout_s + 1.0

    def line(self) -> object:
        return self._link

    async def poll(self, now: float) -> ProbeResult:
        started = time.perf_counter()
        pause = self.target.pause_between_requests.total_seconds()
        values: dict[str, bool | int | float] = {}
        failures: list[Failure] = []
        dead_units: set[int] = set()
        decoded: list[tuple[BlockChecks, Sequence[bool | int | float]]] = []
        for compiled in self._compiled:
            request = compiled.request
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
            block = compiled.decode(words)
            values.update(zip(compiled.names, block, strict=True))
            decoded.append((compiled.checks, block))
        latency = (time.perf_counter() - started) * 1000
        for checks, block in decoded:
            failures.extend(checks.check(block, now))
        versions: dict[str, str] = {}
        if self._version_requests and now >= self._version_due and not failures:
            versions = await self._versions(pause)
            self._version_due = now + self.target.version_interval.total_seconds()
        return ProbeResult.of(worst(failures), latency, values, versions)

    async def _versions(self, pause: float) -> dict[str, str]:
        """The version texts read; one that cannot be read is left out (versions never change the state)."""
        out: dict[str, str] = {}
        for what, request in self._version_requests:
            try:
                words = await self._link.read(request, pause)
            except ModbusFailure:
                continue
            text = register_text([int(w) for w in words])
            if text:
                out[what] = text
        return out
