"""Agent footprint: CPU seconds per 1,000 polls and peak RSS, beside a naive pymodbus loop, in the same run.

    .venv/bin/python bench/footprint.py [--seconds 60] [--targets-scale 1.0] [--profile]

Starts Mosquitto, the simulators (`linewarden sim plant`, own process) and a stand-in collector that acks
(tests/ackers.py, own process). Then, one after the other, against the same simulators:
- the naive loop (own process): pymodbus AsyncModbusTcpClient, one client per gateway, reading the same
  registers as the agent's Modbus targets and nothing else, every second; once with every read on one shared
  tick (`gather`), once with a timer task per target (start times spread over the second);
- the agent (`linewarden agent run`, own process) with 150 Modbus, 30 OPC UA and 20 HTTP targets at 1 s,
  debounce, metrics, outbox and forwarding on.
The agent's window is whole wall-clock minutes (`--seconds` rounded up), because its polls are counted from
its own `metrics` events, which count probes per target per minute. The naive loops run in the wait before
the agent's first whole minute (at least 15 s each) and count their own reads. CPU is user + system time of
the measured process (psutil) over its window, after a warm-up. `--profile` runs the agent under cProfile
during its window only (its CPU figures then carry the profiler's overhead) and prints where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import math
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from simulators.broker import Mosquitto, free_port  # noqa: E402

LINEWARDEN = Path(sys.executable).parent / "linewarden"
UNITS_PER_GATEWAY = 15
OPCUA_TARGETS_PER_SERVER = 10
NAMESPACE = "urn:linewarden:bench:plc"
AGENT_WARMUP_S = 15.0  # connects, first rounds, first outbox commits; the window starts at the minute after
NAIVE_WARMUP_S = 3.0
NAIVE_MIN_S = 15.0
NAIVE_OVERHEAD_S = 2.5  # interpreter start and connects of one naive run, besides its warm-up
NODE_RED_CPU = 0.134  # CPU-s per 1,000 polls, 200 PLCs x one 100-register read, quoted in the issue (not measured)
NODE_RED_RSS_MB = 196
GOAL_OVERALL = 1.3  # agent / floor over the whole mix
GOAL_KIND = 1.5  # agent / floor of one probe kind (and Modbus with 100 points per read)
GOAL_RSS_MB = {"mix": 64, "modbus": 40}


@dataclass(frozen=True)
class Layout:
    """The simulated plant: which devices listen where, and how many targets poll them."""

    modbus_targets: int
    opcua_targets: int
    http_targets: int
    gateways: list[int]  # ports
    opcua_servers: list[int]
    mes_servers: list[int]
    control_port: int

    @classmethod
    def scaled(cls, scale: float, only: str | None = None) -> Layout:
        modbus, opcua, http = (max(1, round(n * scale)) for n in (150, 30, 20))
        if only is not None:
            modbus, opcua, http = (n if kind == only else 0 for n, kind in ((modbus, "modbus"), (opcua, "opcua"),
                                                                             (http, "http")))
        return cls(
            modbus,
            opcua,
            http,
            [free_port() for _ in range(math.ceil(modbus / UNITS_PER_GATEWAY))],
            [free_port() for _ in range(math.ceil(opcua / OPCUA_TARGETS_PER_SERVER))],
            [free_port() for _ in range(http)],
            free_port(),
        )

    @property
    def targets(self) -> int:
        return self.modbus_targets + self.opcua_targets + self.http_targets

    def modbus(self) -> list[tuple[int, int]]:
        """(gateway port, unit id) of every Modbus target."""
        return [(self.gateways[i // UNITS_PER_GATEWAY], i % UNITS_PER_GATEWAY + 1) for i in range(self.modbus_targets)]

    def kinds(self) -> dict[str, int]:
        counts = {"modbus": self.modbus_targets, "opcua": self.opcua_targets, "http": self.http_targets}
        return {kind: n for kind, n in counts.items() if n}

    def describe(self) -> str:
        if not self.opcua_targets + self.http_targets:
            return f"{self.targets} targets, Modbus only, on {len(self.gateways)} gateways; interval 1 s"
        return (
            f"{self.targets} targets: {self.modbus_targets} Modbus on {len(self.gateways)} gateways, "
            f"{self.opcua_targets} OPC UA on {len(self.opcua_servers)} servers, "
            f"{self.http_targets} HTTP on {len(self.mes_servers)} MES servers; interval 1 s"
        )


# ---------------------------------------------------------------- generated configs


@dataclass(frozen=True)
class PointSpec:
    """One configured Modbus point, and the check the naive decode floor makes of it (one comparison)."""

    name: str
    offset: int
    datatype: str
    low: float
    high: float
    must_change: bool = False

    def toml(self) -> str:
        """Compact (no default datatype, no spaces): 150 targets × 100 points stay under the 1 MB config limit."""
        if self.must_change:
            condition = 'must_change_within="5s"'
        elif self.low == self.high:
            condition = f"equals={self.low:g}" + (',fail_state="DOWN"' if self.name == "status" else "")
        else:
            condition = f"min={self.low:g},max={self.high:g}"
        datatype = "" if self.datatype == "uint16" else f'datatype="{self.datatype}",'
        return f'{{name="{self.name}",address={self.offset},{datatype}condition={{{condition}}}}},'


def modbus_points(count: int) -> list[PointSpec]:
    """4: the plant's heartbeat, status, fault code and float32 temperature; 100: every register of holding
    0-99 one point (16-bit each: the simulator's counters are read as words)."""
    heads = [PointSpec("heartbeat", 0, "uint16", 0, 65535, must_change=True), PointSpec("status", 1, "uint16", 1, 1),
             PointSpec("fault-code", 2, "uint16", 0, 0)]
    if count == 4:
        return [*heads, PointSpec("temperature", 12, "float32", -20.0, 90.0)]
    if count != 100:
        raise SystemExit("--points is 4 or 100")
    rest = [PointSpec("coolant-offset", 14, "int16", -32768, 32767) if i == 14 else
            PointSpec(f"r{i}", i, "uint16", 0, 65535) for i in range(3, 100)]
    return heads + rest


def modbus_read(points: list[PointSpec]) -> tuple[int, int]:
    end = max(p.offset + (2 if p.datatype.endswith("32") else 1) for p in points)
    return 0, end


def plant_toml(layout: Layout, keep_alive: bool = True) -> str:
    parts = [f'[plant]\nname = "bench"\nhost = "127.0.0.1"\ncontrol_port = {layout.control_port}\n']
    units = list(range(1, UNITS_PER_GATEWAY + 1))
    parts += [f'[[device]]\nkind = "modbus"\nname = "gw{i}"\nport = {p}\nunits = {units}\n'
              for i, p in enumerate(layout.gateways)]
    parts += [f'[[device]]\nkind = "opcua"\nname = "plc{i}"\nport = {p}\nnamespace_uri = "{NAMESPACE}"\n'
              for i, p in enumerate(layout.opcua_servers)]
    alive = "true" if keep_alive else "false"
    parts += [f'[[device]]\nkind = "mes"\nname = "mes{i}"\nport = {p}\nkeep_alive = {alive}\n'
              for i, p in enumerate(layout.mes_servers)]
    return "\n".join(parts)


def _modbus_target(index: int, port: int, unit: int, points: list[PointSpec]) -> str:
    lines = "\n".join(p.toml() for p in points)
    return f"""
[[assets]]
id = "mb{index}"
criticality = "high"

[[targets]]
id = "mb{index}"
type = "modbus"
asset = "mb{index}"
host = "127.0.0.1"
port = {port}
unit = {unit}
points = [
{lines}
]
"""


def _opcua_target(index: int, port: int) -> str:
    return f"""
[[assets]]
id = "ua{index}"
criticality = "critical"

[[targets]]
id = "ua{index}"
type = "opcua"
asset = "ua{index}"
endpoint = "opc.tcp://127.0.0.1:{port}"

[[targets.nodes]]
name = "heartbeat"
namespace_uri = "{NAMESPACE}"
identifier = "s=Heartbeat"
condition = {{ must_change_within = "5s" }}

[[targets.nodes]]
name = "running"
namespace_uri = "{NAMESPACE}"
identifier = "s=Running"
condition = {{ equals = true, fail_state = "DOWN" }}

[[targets.nodes]]
name = "temperature"
namespace_uri = "{NAMESPACE}"
identifier = "s=Temperature"
condition = {{ min = 0.0, max = 100.0 }}

[[targets.nodes]]
name = "fault-code"
namespace_uri = "{NAMESPACE}"
identifier = "s=FaultCode"
condition = {{ equals = 0 }}
subscribe = true
"""


def _http_target(index: int, port: int) -> str:
    return f"""
[[assets]]
id = "mes{index}"
criticality = "critical"

[[targets]]
id = "mes{index}"
type = "http"
asset = "mes{index}"
url = "http://127.0.0.1:{port}/health"
json_path = "status"
condition = {{ equals = "ok" }}
degraded_latency = "800ms"
"""


def agent_toml(layout: Layout, broker_port: int, data_dir: Path, points: int = 4) -> str:
    head = f"""
[agent]
id = "footprint"
site = "bench"
data_dir = "{data_dir}"
metrics = true
log_level = "warning"

[broker]
host = "127.0.0.1"
port = {broker_port}

[defaults]
interval = "1s"
timeout = "2s"
"""
    parts = [head]
    specs = modbus_points(points)
    parts += [_modbus_target(i, port, unit, specs) for i, (port, unit) in enumerate(layout.modbus())]
    parts += [_opcua_target(i, layout.opcua_servers[i // OPCUA_TARGETS_PER_SERVER])
              for i in range(layout.opcua_targets)]
    parts += [_http_target(i, port) for i, port in enumerate(layout.mes_servers)]
    return "".join(parts)


def check_plan(config: Path, read: tuple[int, int]) -> None:
    """The naive loop must read what the agent reads: fail loudly if the planner's request changes."""
    from agent.probes.modbus import plan_for
    from linewarden.config.agent import AgentConfig
    from linewarden.config.load import load
    from linewarden.config.targets import ModbusTarget

    cfg = load(AgentConfig, config)
    target = next(t for t in cfg.targets if isinstance(t, ModbusTarget))
    requests = [(r.table, r.address, r.count) for r in plan_for(target)]
    if requests != [("holding", *read)]:
        raise SystemExit(f"the agent's plan changed to {requests}; the naive loop reads {read}")


# ---------------------------------------------------------------- child processes (internal modes)


async def run_acker(broker_port: int, out: Path) -> None:
    """The stand-in collector; every second it writes probes and failures per metrics minute to `out`."""
    from linewarden.wire import MetricsBody
    from tests.ackers import Acker

    acker = Acker("127.0.0.1", broker_port, client_id="footprint-acker")
    await acker.start()
    while True:
        minutes: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])  # minute -> targets, probes, failures
        for events in acker.bodies.values():
            for event in events.values():
                if isinstance(event.body, MetricsBody):
                    row = minutes[event.body.minute]
                    row[0] += 1
                    row[1] += event.body.probes
                    row[2] += event.body.failures
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({str(m): row for m, row in minutes.items()}))
        tmp.replace(out)
        await asyncio.sleep(1.0)


async def run_naive(spec: dict[str, Any]) -> None:
    """The floor for one probe kind, the plain way with the agent's libraries; prints one JSON line with CPU,
    polls and errors of the window.

    modbus-shared: the Modbus reads on one shared tick, nothing else; modbus-timer: one timer task per target;
    modbus-decode: shared tick, and each block decoded with one struct call and every point given one comparison;
    opcua: one asyncua session per server, per target one Read of the agent's nodes and a subscription;
    http: one httpx client (keep-alive), per target a GET, its JSON parsed and one comparison.
    """
    mode = spec["mode"]
    polls, errors = 0, 0
    tick: Any
    if mode.startswith("modbus"):
        import struct

        from pymodbus.client import AsyncModbusTcpClient
        from pymodbus.exceptions import ModbusException

        targets = [(int(p), int(u)) for p, u in spec["modbus"]]
        address, count = spec["read"]
        points = [PointSpec(**p) for p in spec["points"]]
        block = struct.Struct(f">{count}H")
        codes = {"uint16": "H", "int16": "h", "uint32": "I", "int32": "i", "float32": "f"}
        layout, at = ">", 0
        for point in sorted(points, key=lambda p: p.offset):
            layout += "x" * (2 * (point.offset - at)) + codes[point.datatype]
            at = point.offset + (2 if point.datatype.endswith("32") else 1)
        fields = struct.Struct(layout)
        bounds = [(p.low, p.high) for p in sorted(points, key=lambda p: p.offset)]
        last: dict[tuple[int, int], float] = {}
        clients = {port: AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0) for port, _ in targets}
        for client in clients.values():
            await client.connect()
        decode = mode == "modbus-decode"

        async def read(port: int, unit: int) -> None:
            nonlocal polls, errors
            try:
                response = await clients[port].read_holding_registers(address, count=count, device_id=unit)
                if response.isError():
                    errors += 1
                elif decode:
                    values = fields.unpack(block.pack(*response.registers))
                    bad = 0
                    for value, (low, high) in zip(values, bounds, strict=True):
                        if not low <= value <= high:
                            bad += 1
                    bad += values[0] == last.get((port, unit))  # the heartbeat: one more comparison
                    last[(port, unit)] = values[0]
            except ModbusException:
                errors += 1
            polls += 1

        async def modbus_round() -> None:
            await asyncio.gather(*(read(port, unit) for port, unit in targets))

        tick = modbus_round
        if mode == "modbus-timer":
            async def own_timer(port: int, unit: int, offset: float) -> None:
                next_at = time.monotonic() + offset
                while True:
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                    await read(port, unit)
                    next_at += 1.0

            tick = None
            tasks = [asyncio.create_task(own_timer(p, u, i / len(targets))) for i, (p, u) in enumerate(targets)]
    elif mode == "opcua":
        from asyncua import ua
        from asyncua.client.client import Client
        from asyncua.ua.attribute_ids import AttributeIds
        from asyncua.ua.object_ids import ObjectIds

        from agent.probes.opcua_session import standard_node

        servers = sorted(set(spec["opcua"]))
        sessions = {port: Client(f"opc.tcp://127.0.0.1:{port}", timeout=2) for port in servers}
        reads: list[tuple[Client, list[ua.NodeId]]] = []

        class Quiet:
            def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
                pass

        for port, session in sessions.items():
            await session.connect()
            ns = await session.get_namespace_index(NAMESPACE)
            standard = [standard_node(i) for i in (ObjectIds.Server_ServerStatus_State,
                                                   ObjectIds.Server_ServerStatus_BuildInfo_SoftwareVersion,
                                                   ObjectIds.Server_ServerStatus_BuildInfo_BuildNumber)]
            names = ("Heartbeat", "Running", "Temperature")
            nodes = standard + [ua.NodeId.from_string(f"ns={ns};s={n}") for n in names]
            for _ in range(spec["opcua"].count(port)):
                subscription = await session.create_subscription(1000, Quiet())
                await subscription.subscribe_data_change([session.get_node(f"ns={ns};s=FaultCode")])
                reads.append((session, nodes))

        async def read_one(session: Client, nodes: list[ua.NodeId]) -> None:
            nonlocal polls, errors
            try:
                values = await session.uaclient.read_attributes(nodes, AttributeIds.Value)
                errors += any(v.StatusCode is not None and v.StatusCode.is_bad() for v in values)
            except Exception:
                errors += 1
            polls += 1

        async def opcua_round() -> None:
            await asyncio.gather(*(read_one(c, n) for c, n in reads))

        tick = opcua_round
    elif mode == "http":
        import httpx

        http = httpx.AsyncClient(timeout=2)

        async def get(url: str) -> None:
            nonlocal polls, errors
            try:
                response = await http.get(url)
                errors += response.status_code != 200 or response.json().get("status") != "ok"
            except httpx.HTTPError:
                errors += 1
            polls += 1

        async def http_round() -> None:
            await asyncio.gather(*(get(url) for url in spec["http"]))

        tick = http_round
    else:
        raise SystemExit(f"unknown naive mode {mode}")

    async def shared_tick() -> None:
        next_at = time.monotonic()
        while True:
            await tick()
            next_at += 1.0
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    if tick is not None:
        tasks = [asyncio.create_task(shared_tick())]
    me = psutil.Process()
    await asyncio.sleep(spec["warmup"])
    cpu0, polls0, errors0, t0 = me.cpu_times(), polls, errors, time.monotonic()
    await asyncio.sleep(spec["window"])
    cpu1, polls1, errors1, t1 = me.cpu_times(), polls, errors, time.monotonic()
    for task in tasks:
        task.cancel()
    print(json.dumps({
        "cpu": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        "polls": polls1 - polls0,
        "errors": errors1 - errors0,
        "seconds": t1 - t0,
        "peak_rss": peak_rss(me.pid) or me.memory_info().rss,
    }), flush=True)
    os._exit(0)  # sessions and clients are not closed politely: the floor's process just ends


def run_profiled_agent(config: Path, out: Path) -> int:
    """`linewarden agent run` with cProfile switched on by SIGUSR1 and off (and saved) by SIGUSR2.

    The profiler's clock is the CPU time of the event-loop thread, so time spent waiting in epoll is not counted.
    """
    from agent.cli import main

    profiler = cProfile.Profile(time.thread_time)
    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())

    def save(*_: object) -> None:
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR2, save)
    return main(["run", "--config", str(config)])


# ---------------------------------------------------------------- memory by import


# Run with `python -c` so that nothing but the interpreter is loaded before the first step (this file imports
# psutil and the simulators). RSS from /proc; tracemalloc attributes each traced block to the first frame that
# is not the standard library's, grouped by top-level package.
IMPORT_STEPS = """
import importlib, json, sys, tracemalloc
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
def stdlib(name):
    return "/lib/python3" in name and "site-packages/" not in name
traced, repo = sys.argv[1] == "trace", sys.argv[2] + "/"
if traced:
    tracemalloc.start(12)
steps = [("interpreter", rss())]
for module in sys.argv[3:]:
    importlib.import_module(module)
    steps.append((module, rss()))
heavy = ("cryptography", "asyncua", "asyncua.server", "httpx", "psutil", "holidays", "importlib.metadata",
         "http.client")
loaded = [name for name in heavy if name in sys.modules]
packages = {}
if traced:
    for stat in tracemalloc.take_snapshot().statistics("traceback"):
        own = [f.filename for f in stat.traceback if not f.filename.startswith("<") and not stdlib(f.filename)]
        name = own[-1] if own else "stdlib (the import machinery, typing, enum, re ...)"
        if "site-packages/" in name:
            name = name.split("site-packages/", 1)[1].split("/", 1)[0]
        elif name.startswith(repo):
            name = "linewarden: " + name[len(repo):].split("/", 1)[0]
        packages[name] = packages.get(name, 0) + stat.size
print(json.dumps({"steps": steps, "packages": packages, "loaded": loaded}))
"""


# What the agent's core loads, in the order its imports pull it in: the event loop (asyncio brings ssl, so
# OpenSSL's libraries), SQLite, the `agent` package (which first keeps paho's proxy helpers out:
# agent/lean_imports.py), the configuration and the wire (msgspec Structs, no pydantic), MQTT (paho), then the
# rest of the agent.
AGENT_IMPORTS = ("asyncio", "sqlite3", "agent", "linewarden.config.agent", "linewarden.wire", "linewarden.mqtt",
                 "agent.runtime")


def print_imports(layout: Layout) -> None:
    """RSS after each import the agent makes for this layout's probe kinds, and traced bytes by package."""
    modules = [*AGENT_IMPORTS, *(f"agent.probes.{k}" for k in layout.kinds())]
    runs: list[dict[str, Any]] = []
    for mode in ("rss", "trace"):
        try:
            out = subprocess.run([sys.executable, "-c", IMPORT_STEPS, mode, str(REPO), *modules], check=True,
                                 capture_output=True, text=True, timeout=600, cwd=REPO)
        except subprocess.TimeoutExpired:  # tracing asyncua's import is slow on a busy box: leave it out
            runs.append({"steps": runs[0]["steps"] if runs else [], "packages": {}})
            continue
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("memory of the agent's imports for these probe kinds (RSS after each, own process):")
    before = 0
    for module, rss in runs[0]["steps"]:
        print(f"  {rss / 1e6:6.1f} MB  {(rss - before) / 1e6:+6.1f} MB  {module}")
        before = rss
    print(f"  of cryptography, asyncua, asyncua.server, httpx, psutil, holidays, importlib.metadata, http.client "
          f"these loaded: "
          f"{', '.join(runs[0].get('loaded', [])) or 'none'}")
    packages = sorted(runs[1]["packages"].items(), key=lambda kv: -kv[1])
    total = sum(size for _, size in packages)
    print(f"  Python objects allocated by those imports (tracemalloc, {total / 1e6:.1f} MB), by package:")
    for name, size in packages[:10]:
        print(f"    {size / 1e6:6.1f} MB  {name}")


# ---------------------------------------------------------------- measuring


def peak_rss(pid: int) -> int | None:
    """VmHWM (the kernel's high-water mark of resident memory) in bytes; None where /proc has none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


@dataclass
class Figures:
    name: str
    polls: int
    cpu: float
    seconds: float
    peak_rss: int | None = None
    errors: int = 0
    kind: str = ""
    mode: str = ""

    @property
    def per_1000(self) -> float:
        return 1000 * self.cpu / self.polls


NAIVE_LABELS = {
    "modbus-shared": ("modbus", "naive pymodbus reads only"),
    "modbus-decode": ("modbus", "naive pymodbus + struct decode/check"),
    "opcua": ("opcua", "naive asyncua Read + subscription"),
    "http": ("http", "naive httpx GET (keep-alive client)"),
}
FLOOR_OF = {"modbus": "modbus-decode", "opcua": "opcua", "http": "http"}  # the same work as the agent's probe


def naive_modes(layout: Layout) -> list[str]:
    kinds = layout.kinds()
    return [m for m in NAIVE_LABELS if NAIVE_LABELS[m][0] in kinds]


def naive(mode: str, layout: Layout, window: float, points: list[PointSpec]) -> Figures:
    spec = {
        "mode": mode,
        "modbus": layout.modbus(),
        "read": modbus_read(points),
        "points": [vars(p) for p in points],
        "opcua": [layout.opcua_servers[i // OPCUA_TARGETS_PER_SERVER] for i in range(layout.opcua_targets)],
        "http": [f"http://127.0.0.1:{port}/health" for port in layout.mes_servers],
        "warmup": NAIVE_WARMUP_S,
        "window": window,
    }
    out = subprocess.run(
        [sys.executable, __file__, "--naive", json.dumps(spec)],
        check=True, capture_output=True, text=True, timeout=window + NAIVE_WARMUP_S + 60,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    kind, label = NAIVE_LABELS[mode]
    return Figures(label, got["polls"], got["cpu"], got["seconds"], got["peak_rss"], got["errors"], kind, mode)


def sleep_until(wall: float) -> None:
    while (left := wall - time.time()) > 0:
        time.sleep(min(left, 0.5))


def agent_run(
    config: Path, targets: int, metrics_file: Path, first_minute: float, minutes: int, profile_out: Path | None
) -> Figures:
    """Start the agent, measure its CPU over whole minutes from `first_minute`, count its polls from metrics."""
    if profile_out is None:
        cmd = [str(LINEWARDEN), "agent", "run", "--config", str(config)]
    else:
        cmd = [sys.executable, __file__, "--profiled-agent", str(config), str(profile_out)]
    process = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    proc = psutil.Process(process.pid)
    end = first_minute + 60 * minutes
    try:
        sleep_until(first_minute)
        if process.poll() is not None:
            raise SystemExit(f"the agent exited early:\n{process.stderr.read() if process.stderr else ''}")
        cpu0 = cpu_s(proc)
        if profile_out is not None:
            proc.send_signal(signal.SIGUSR1)
        sampled = 0
        while time.time() < end:
            sampled = max(sampled, proc.memory_info().rss)
            time.sleep(min(0.5, max(0.0, end - time.time())))
        cpu1 = cpu_s(proc)
        if profile_out is not None:
            proc.send_signal(signal.SIGUSR2)
        peak = peak_rss(proc.pid) or sampled
        wanted = [str(int(first_minute * 1000) + 60_000 * i) for i in range(minutes)]
        rows = wait_for_metrics(metrics_file, wanted, targets)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, errors = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, errors = process.communicate()
    if process.returncode != 0:
        print(f"warning: the agent exited with {process.returncode}:\n{errors[-2000:]}", file=sys.stderr)
    if profile_out is not None:
        deadline = time.monotonic() + 10
        while not profile_out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    polls = sum(rows[m][1] for m in wanted)
    failures = sum(rows[m][2] for m in wanted)
    return Figures("agent, everything on", polls, cpu1 - cpu0, end - first_minute, peak, failures)


def wait_for_metrics(path: Path, minutes: list[str], targets: int, timeout: float = 30.0) -> dict[str, list[int]]:
    """The acker's per-minute rows once every wanted minute has its metrics from every target."""
    deadline = time.monotonic() + timeout
    rows: dict[str, list[int]] = {}
    while time.monotonic() < deadline:
        rows = json.loads(path.read_text())
        if all(rows.get(m, [0])[0] == targets for m in minutes):
            return rows
        time.sleep(0.5)
    raise SystemExit(f"no metrics events for minutes {minutes} within {timeout:g} s (have {sorted(rows)})")


def start_plant(config: Path) -> subprocess.Popen[str]:
    plant = subprocess.Popen(
        [str(LINEWARDEN), "sim", "plant", "--config", str(config)], stdout=subprocess.PIPE, text=True
    )
    assert plant.stdout is not None
    for line in plant.stdout:
        if line.strip() == "ready":
            return plant
    plant.wait()
    raise SystemExit(f"the simulators did not start (exit {plant.returncode})")


def stop(process: subprocess.Popen[Any]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(layout: Layout, agent: Figures, baselines: Sequence[Figures], command: str, points: int) -> None:
    rss_mb = (agent.peak_rss or 0) / 1e6
    print(f"\n{command}\n{layout.describe()}; {points} Modbus points per read")
    print(f"{'':40} {'window':>8} {'polls':>8} {'CPU s':>7} {'CPU-s/1000 polls':>17} {'peak RSS':>9}")
    for f in (agent, *baselines):
        rss = f"{f.peak_rss / 1e6:.0f} MB" if f.peak_rss else "-"
        print(f"{f.name:40} {f.seconds:>6.1f} s {f.polls:>8,} {f.cpu:>7.2f} {f.per_1000:>17.3f} {rss:>9}")
    print(f"{'Node-RED + node-red-contrib-modbus':40} {'quoted in the issue, not measured':>34} "
          f"{NODE_RED_CPU:>7.3f} {'~' + str(NODE_RED_RSS_MB) + ' MB':>9}")
    rounds = agent.polls / layout.targets
    print(f"\nagent: {rounds:.1f} rounds of {layout.targets} targets in {agent.seconds:.0f} s "
          f"(counted from its metrics events); failed probes in the window: {agent.errors}")
    if layout.modbus_targets:
        per_s = agent.polls / agent.seconds * layout.modbus_targets / layout.targets
        print(f"Modbus: {per_s:,.0f} polls/s, {per_s * points:,.0f} decoded and checked points/s")
    if any(f.errors for f in baselines):
        print("naive errors: " + ", ".join(f"{f.name}: {f.errors}" for f in baselines))
    floors = {f.mode: f for f in baselines}
    kinds = layout.kinds()
    floor_cpu = sum(floors[FLOOR_OF[k]].cpu / floors[FLOOR_OF[k]].polls * n for k, n in kinds.items())
    floor = 1000 * floor_cpu / layout.targets
    ratio = agent.per_1000 / floor
    if len(kinds) == 1:
        kind = next(iter(kinds))
        goal = GOAL_KIND
        print(f"agent / floor for {kind} ({floors[FLOOR_OF[kind]].name}): {ratio:.2f}  "
              f"(goal <= {goal}: {verdict(ratio <= goal)})")
        if kind == "modbus":
            reads = floors["modbus-shared"]
            print(f"agent / naive reads only: {agent.per_1000 / reads.per_1000:.2f}  (the decode floor adds "
                  f"{floors['modbus-decode'].per_1000 - reads.per_1000:+.3f} CPU-s per 1,000 polls)")
            print(f"agent / Node-RED quoted {NODE_RED_CPU}: {agent.per_1000 / NODE_RED_CPU:.2f}  "
                  f"(goal < 1: {verdict(agent.per_1000 < NODE_RED_CPU)})")
    else:
        print(f"floor for this mix (each kind's floor per poll, weighted by its targets): {floor:.3f} CPU-s per "
              f"1,000 polls")
        print(f"agent / floor overall: {ratio:.2f}  (goal <= {GOAL_OVERALL}: {verdict(ratio <= GOAL_OVERALL)}); "
              f"per kind: run with --only modbus|opcua|http")
    goal_mb = GOAL_RSS_MB["modbus"] if list(kinds) == ["modbus"] else GOAL_RSS_MB["mix"]
    print(f"agent peak RSS {rss_mb:.0f} MB  (goal <= {goal_mb} MB: {verdict(rss_mb <= goal_mb)})")


def print_profile(path: Path, top: int = 25) -> None:
    """Own time of the agent's main thread grouped by package, then the functions with most own time."""
    stats = pstats.Stats(str(path))
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = sum(own for _, _, own, _, _ in raw.values())
    groups: dict[str, float] = defaultdict(float)
    for (filename, _, function), (_, _, own, _, _) in raw.items():
        groups[_package(filename, function)] += own
    print(f"\nprofile of the agent's event-loop thread over the window: {total:.2f} CPU s")
    for name, own in sorted(groups.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {own:7.2f} s  {100 * own / total:5.1f} %  {name}")
    print()
    stats.sort_stats("tottime").print_stats(top)


def _package(filename: str, function: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if filename.startswith(str(REPO)):
        return "linewarden: " + str(Path(filename).relative_to(REPO).parent)
    if filename == "~":
        kind = next((k for k in ("socket", "sqlite3", "select", "json", "pydantic") if k in function), "other")
        return f"C functions: {kind}"
    return "python stdlib: " + Path(filename).stem


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="agent window, rounded up to whole minutes")
    parser.add_argument("--targets-scale", type=float, default=1.0, help="multiply the 150/30/20 targets")
    parser.add_argument("--profile", action="store_true", help="cProfile the agent during its window")
    parser.add_argument("--only", choices=("modbus", "opcua", "http"), help="the agent polls only this kind")
    parser.add_argument("--modbus-only", action="store_true", help="same as --only modbus")
    parser.add_argument("--points", type=int, default=4, choices=(4, 100), help="Modbus points per read")
    parser.add_argument("--mes-close", action="store_true", help="the MES closes every connection (no keep-alive)")
    parser.add_argument("--imports", action="store_true", help="only the memory breakdown of the agent's imports")
    # internal: the child processes
    parser.add_argument("--acker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--naive", help=argparse.SUPPRESS)
    parser.add_argument("--profiled-agent", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.acker:
        asyncio.run(run_acker(int(args.acker[0]), Path(args.acker[1])))
        return
    if args.naive:
        asyncio.run(run_naive(json.loads(args.naive)))
        return
    if args.profiled_agent:
        raise SystemExit(run_profiled_agent(Path(args.profiled_agent[0]), Path(args.profiled_agent[1])))

    command = " ".join([".venv/bin/python bench/footprint.py", *(argv if argv is not None else sys.argv[1:])])
    minutes = max(1, math.ceil(args.seconds / 60))
    only = "modbus" if args.modbus_only else args.only
    layout = Layout.scaled(args.targets_scale, only)
    points = modbus_points(args.points)
    print_imports(layout)
    if args.imports:
        return
    with Mosquitto() as broker, tempfile.TemporaryDirectory(prefix="lw-footprint-") as tmp:
        directory = Path(tmp)
        (directory / "plant.toml").write_text(plant_toml(layout, keep_alive=not args.mes_close))
        config = directory / "agent.toml"
        config.write_text(agent_toml(layout, broker.port, directory / "agent-data", args.points))
        if layout.modbus_targets:
            check_plan(config, modbus_read(points))
        metrics_file = directory / "metrics.json"
        print(f"footprint bench: {layout.describe()}; mosquitto on {broker.port}", flush=True)
        plant = start_plant(directory / "plant.toml")
        acker = subprocess.Popen([sys.executable, __file__, "--acker", str(broker.port), str(metrics_file)])
        try:
            while not metrics_file.exists():
                time.sleep(0.1)
            # the agent's first whole minute comes after the naive runs and its own warm-up
            modes = naive_modes(layout)
            runs = len(modes)
            earliest = time.time() + runs * (NAIVE_OVERHEAD_S + NAIVE_WARMUP_S + NAIVE_MIN_S) + AGENT_WARMUP_S
            first_minute = math.ceil(earliest / 60) * 60
            slack = first_minute - AGENT_WARMUP_S - time.time() - runs * (NAIVE_OVERHEAD_S + NAIVE_WARMUP_S)
            window = max(NAIVE_MIN_S, slack / runs)
            baselines = []
            for mode in modes:
                print(f"naive loop ({mode}): {window:.0f} s window ...", flush=True)
                baselines.append(naive(mode, layout, window, points))
            if time.time() > first_minute - AGENT_WARMUP_S + 5:  # the naive runs were slower than planned
                first_minute = math.ceil((time.time() + AGENT_WARMUP_S) / 60) * 60
            print(f"agent: warm-up, then {minutes} whole minute(s) from "
                  f"{time.strftime('%H:%M:%S', time.localtime(first_minute))} ...", flush=True)
            profile_out = directory / "agent.prof" if args.profile else None
            agent = agent_run(config, layout.targets, metrics_file, first_minute, minutes, profile_out)
        finally:
            stop(acker)
            stop(plant)
        report(layout, agent, baselines, command, args.points)
        if profile_out is not None:
            print("\n(--profile: the agent's CPU figures above include cProfile's overhead)")
            print_profile(profile_out)


if __name__ == "__main__":
    main()
