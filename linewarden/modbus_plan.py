"""Plan the fewest Modbus read requests that cover a set of points (pure).

Points are grouped per (unit, table), sorted by address and merged greedily: a point joins the current request
when the hole before it is at most `max_gap` and the request stays within the per-request cap. Greedy is
optimal here: among all valid plans, its k-th request always ends at least as far right as any other's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby
from typing import Literal

Table = Literal["holding", "input", "coil", "discrete"]

MAX_REGISTERS = 125  # Modbus spec: read holding/input registers, 1..125
MAX_BITS = 2000  # Modbus spec: read coils/discrete inputs, 1..2000


@dataclass(frozen=True)
class Span:
    """One point to read: `width` consecutive registers (or bits) from `address`."""

    name: str
    unit: int
    table: Table
    address: int
    width: int = 1

    @property
    def end(self) -> int:
        return self.address + self.width


@dataclass(frozen=True)
class Limits:
    max_registers: int = MAX_REGISTERS
    max_bits: int = MAX_BITS
    max_gap: int = 10

    def cap(self, table: Table) -> int:
        if table in ("coil", "discrete"):
            return min(self.max_bits, MAX_BITS)
        return min(self.max_registers, MAX_REGISTERS)


@dataclass(frozen=True)
class ReadRequest:
    unit: int
    table: Table
    address: int
    count: int
    spans: tuple[Span, ...]

    def slice_of(self, span: Span) -> slice:
        """Where `span`'s words (or bits) sit in this request's response."""
        start = span.address - self.address
        return slice(start, start + span.width)


def plan_reads(spans: Iterable[Span], limits: Limits) -> list[ReadRequest]:
    """The requests for one scan, ordered by unit, table and address. Raises ValueError for a span wider
    than the cap of its table (a 32-bit value can't be split across requests)."""
    ordered = sorted(spans, key=lambda s: (s.unit, s.table, s.address, -s.width))
    requests: list[ReadRequest] = []
    for (unit, table), group in groupby(ordered, key=lambda s: (s.unit, s.table)):
        cap = limits.cap(table)
        current: list[Span] = []
        start = end = 0
        for span in group:
            if span.width > cap:
                raise ValueError(f"point {span.name!r} needs {span.width} {table} words, more than {cap} per request")
            if current and span.address - end <= limits.max_gap and max(end, span.end) - start <= cap:
                current.append(span)
                end = max(end, span.end)
                continue
            if current:
                requests.append(ReadRequest(unit, table, start, end - start, tuple(current)))
            current, start, end = [span], span.address, span.end
        requests.append(ReadRequest(unit, table, start, end - start, tuple(current)))
    return requests
