"""Requests per scan: linewarden's Modbus planner beside Telegraf's documented grouping.

Telegraf's `inputs.modbus` (plugins/inputs/modbus/request.go, see shared research perf-reliability-anchors §A1):
- optimization "none" (default): only consecutive fields share a request, split at the max request size;
- optimization "max_insert": fields join the request while the hole before each is at most
  `optimization_max_register_fill` (default 50) and the request stays within the max size.
Both are re-implemented below from that description as the baseline. Run: `python -m bench.modbus_planner`.
"""

from __future__ import annotations

from collections.abc import Callable

from linewarden.modbus_plan import MAX_REGISTERS, Limits, Span, plan_reads

Field = tuple[int, int]  # address, length in registers


def telegraf_none(fields: list[Field], max_batch: int = MAX_REGISTERS) -> list[Field]:
    groups: list[list[Field]] = []
    for f in sorted(fields, key=lambda f: (f[0], -f[1])):
        if groups and f[0] == groups[-1][-1][0] + groups[-1][-1][1]:
            groups[-1].append(f)
        else:
            groups.append([f])
    requests: list[Field] = []
    for group in groups:  # split at the max size, never inside a field
        start, end = group[0][0], group[0][0]
        for address, length in group:
            if address + length - start > max_batch:
                requests.append((start, end - start))
                start = address
            end = address + length
        requests.append((start, end - start))
    return requests


def telegraf_max_insert(fields: list[Field], fill: int = 50, max_batch: int = MAX_REGISTERS) -> list[Field]:
    ordered = sorted(fields, key=lambda f: (f[0], -f[1]))
    requests: list[Field] = []
    start, length = ordered[0]
    previous = ordered[0]
    for address, size in ordered[1:]:
        hole = max(0, address - (previous[0] + previous[1]))
        if hole > fill or length + hole + size > max_batch:
            requests.append((start, length))
            start, length = address, size
        else:
            length = address + size - start
        previous = (address, size)
    requests.append((start, length))
    return requests


def linewarden(fields: list[Field], max_gap: int) -> list[Field]:
    spans = [Span(f"f{i}", 1, "holding", a, n) for i, (a, n) in enumerate(fields)]
    return [(r.address, r.count) for r in plan_reads(spans, Limits(max_gap=max_gap))]


MAPS: dict[str, list[Field]] = {
    # the simulated PLC: heartbeat, status, fault, int32 counter, float32 temperature, int16 offset, speed, pressure
    "simulated PLC (8 points)": [(0, 1), (1, 1), (2, 1), (10, 2), (12, 2), (14, 1), (20, 1), (21, 1)],
    # energy meter: 30 float32 values back to back from 3000, plus 10 totals every 20 registers from 3200
    "energy meter (40 points)": [(3000 + 2 * i, 2) for i in range(30)] + [(3200 + 20 * i, 2) for i in range(10)],
    # drive: status words scattered with holes of 5..40 registers
    "drive, scattered (24 points)": [(a, 1) for a in (0, 6, 12, 30, 31, 60, 100, 104, 110, 150, 151, 152)]
    + [(a, 2) for a in (200, 206, 230, 270, 300, 340, 380, 384, 400, 440, 480, 484)],
    # large dense block: 300 consecutive uint16
    "dense block (300 points)": [(i, 1) for i in range(300)],
    # sparse: 40 float32 every 30 registers
    "sparse float32 (40 points)": [(30 * i, 2) for i in range(40)],
}

PLANNERS: dict[str, Callable[[list[Field]], list[Field]]] = {
    "linewarden gap=10": lambda f: linewarden(f, 10),
    "linewarden gap=50": lambda f: linewarden(f, 50),
    "telegraf none": telegraf_none,
    "telegraf max_insert(50)": telegraf_max_insert,
}


def main() -> None:
    width = max(len(name) for name in MAPS)
    header = " | ".join(f"{name:>23}" for name in PLANNERS)
    print(f"{'register map':<{width}} | {header}")
    print(f"{'':<{width}} | " + " | ".join(f"{'requests / registers':>23}" for _ in PLANNERS))
    for name, fields in MAPS.items():
        cells = []
        for plan in PLANNERS.values():
            requests = plan(fields)
            assert all(n <= MAX_REGISTERS for _, n in requests)
            cells.append(f"{len(requests):>12} / {sum(n for _, n in requests):>8}")
        print(f"{name:<{width}} | " + " | ".join(f"{c:>23}" for c in cells))


if __name__ == "__main__":
    main()
