"""Agent soak: does the agent's memory grow while it runs for long with faults coming and going?

    .venv/bin/python bench/soak.py [--minutes 60] [--targets-scale 1.0]

Starts, each in its own process, Mosquitto, the simulators (`linewarden sim plant`) and `linewarden agent run`
(interval 1 s), on footprint.py's generated plant and agent configs (200 targets × `--targets-scale`), and a
stand-in collector that acks (tests/ackers.py, in this process) so the outbox drains. For `--minutes`, every
20 s it injects a fault through the plant's control API on a rotating device: Modbus exception 4 (cleared after
10 s), Modbus gateway down 10 s, OPC UA server down 10 s, MES slow 1.5 s (cleared after 10 s). So state
changes, incidents and reconnects keep happening. Every 10 s it samples the agent's RSS, CPU and open file
descriptors (psutil), the depth of its SQLite outbox (read-only), the outbox and WAL file sizes and the incidents
opened and resolved that the acker received.

The agent's flap window is 30 s (default 10 min), so that incidents held open by flap damping resolve
within the run. After the last fault the bench waits (at most 90 s) for the outbox to drain and every
opened incident to resolve. Growth is the slope of a least-squares line through the samples after minute 2
(RSS, descriptors, outbox and WAL bytes), and, for "once warm", through the second half of the run; the
figures at minute 2 are the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from bench.footprint import LINEWARDEN, Layout, agent_toml, cpu_s, peak_rss, plant_toml, start_plant, stop  # noqa: E402
from linewarden.errors import SimulatorError  # noqa: E402
from linewarden.wire import IncidentOpenedBody, IncidentResolvedBody  # noqa: E402
from simulators.broker import Mosquitto  # noqa: E402
from simulators.control import ControlClient  # noqa: E402
from simulators.fault_spec import FaultSpec  # noqa: E402
from tests.ackers import Acker  # noqa: E402

SAMPLE_S = 10.0
FAULT_EVERY_S = 20.0
FAULT_S = 10.0
BASELINE_MIN = 2.0
SETTLE_S = 90.0
CONTROL_TRIES, CONTROL_RETRY_S = 5, 1.0
FLAP_WINDOW = "30s"
GOAL_MB_PER_H = 1.0


@dataclass(frozen=True)
class Fault:
    label: str
    device_prefix: str  # footprint.plant_toml names devices gw<i>, plc<i>, mes<i>
    spec: FaultSpec
    cleared: bool  # the fault stays until `clear`; the others end by themselves after FAULT_S


FAULTS = (
    Fault("Modbus exception", "gw", FaultSpec(fault="exception", code=4), cleared=True),
    Fault("Modbus down", "gw", FaultSpec(fault="down", seconds=FAULT_S), cleared=False),
    Fault("OPC UA down", "plc", FaultSpec(fault="down", seconds=FAULT_S), cleared=False),
    Fault("MES slow", "mes", FaultSpec(fault="slow", ms=1500), cleared=True),
)


@dataclass(frozen=True)
class Sample:
    minute: float
    rss: int
    cpu: float
    fds: int
    outbox_bytes: int
    wal_bytes: int
    outbox: int | None  # None: the outbox could not be read at that moment
    opened: int
    resolved: int


def outbox_depth(path: Path) -> int | None:
    """Events waiting in the agent's outbox, read without taking part in its writes."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
        try:
            row = db.execute("SELECT COUNT(*) FROM events").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return int(row[0])


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def incidents(acker: Acker) -> tuple[set[str], set[str]]:
    """Ids of the incidents opened and resolved among the events the acker stored."""
    opened: set[str] = set()
    resolved: set[str] = set()
    for events in acker.bodies.values():
        for event in events.values():
            if isinstance(event.body, IncidentOpenedBody):
                opened.add(event.body.incident)
            elif isinstance(event.body, IncidentResolvedBody):
                resolved.add(event.body.incident)
    return opened, resolved


async def _control(control: ControlClient, device: str, spec: FaultSpec, what: str, log: list[str]) -> bool:
    """One call to the plant's control API, tried again on a busy box: a fault left uncleared would keep its
    targets down, and the run would count their incidents as unresolved."""
    for attempt in range(1, CONTROL_TRIES + 1):
        try:
            await control.apply(device, spec)
            return True
        except SimulatorError as exc:
            if attempt == CONTROL_TRIES:
                log.append(f"{what} on {device} failed {CONTROL_TRIES} times: {exc!s:.200}")
            else:
                await asyncio.sleep(CONTROL_RETRY_S)
    return False


async def inject_faults(control: ControlClient, layout: Layout, until: float, log: list[str]) -> None:
    """One fault every FAULT_EVERY_S on a rotating device, the last one over (or cleared) before `until`."""
    devices = {"gw": len(layout.gateways), "plc": len(layout.opcua_servers), "mes": len(layout.mes_servers)}
    step = 0
    while time.monotonic() + FAULT_EVERY_S <= until:
        started = time.monotonic()
        fault = FAULTS[step % len(FAULTS)]
        count = devices[fault.device_prefix]
        if count:
            device = f"{fault.device_prefix}{(step // len(FAULTS)) % count}"
            if await _control(control, device, fault.spec, f"fault {fault.label}", log):
                await asyncio.sleep(FAULT_S)
                if fault.cleared:
                    await _control(control, device, FaultSpec(fault="clear"), f"clearing {fault.label}", log)
        step += 1
        await asyncio.sleep(max(0.0, started + FAULT_EVERY_S - time.monotonic()))
    log.append(f"{step} faults injected")


class Sampler:
    def __init__(self, agent: psutil.Process, outbox: Path, acker: Acker, start: float) -> None:
        self.agent, self.outbox, self.acker, self.start = agent, outbox, acker, start
        self.samples: list[Sample] = []

    def take(self) -> Sample:
        opened, resolved = incidents(self.acker)
        sample = Sample(
            (time.monotonic() - self.start) / 60,
            self.agent.memory_info().rss,
            cpu_s(self.agent),
            self.agent.num_fds(),
            file_size(self.outbox),
            file_size(self.outbox.with_name(self.outbox.name + "-wal")),
            outbox_depth(self.outbox),
            len(opened),
            len(opened & resolved),
        )
        self.samples.append(sample)
        depth = "-" if sample.outbox is None else str(sample.outbox)
        print(f"{sample.minute:6.2f} {sample.rss / 1e6:8.1f} {sample.cpu:7.1f} {sample.fds:>4} "
              f"{sample.outbox_bytes / 1e3:>8.0f} {sample.wal_bytes / 1e3:>7.0f} {depth:>7} "
              f"{sample.opened:>7} {sample.resolved:>9}", flush=True)
        return sample


async def soak(
    layout: Layout, broker: Mosquitto, agent: subprocess.Popen[bytes], directory: Path, minutes: float
) -> tuple[list[Sample], str]:
    """Inject faults for `minutes` while sampling the running agent, then let it settle; samples and fault log."""
    acker = Acker(broker.host, broker.port, client_id="soak-acker")
    await acker.start()
    control = ControlClient(f"http://127.0.0.1:{layout.control_port}")
    start = time.monotonic()
    end = start + 60 * minutes
    sampler = Sampler(psutil.Process(agent.pid), directory / "agent-data" / "outbox.db", acker, start)
    fault_log: list[str] = []
    try:
        print(f"{'minute':>6} {'RSS MB':>8} {'CPU s':>7} {'fds':>4} {'db kB':>8} {'WAL kB':>7} {'outbox':>7} "
              f"{'opened':>7} {'resolved':>9}", flush=True)
        injector = asyncio.create_task(inject_faults(control, layout, end, fault_log))
        next_at = start + SAMPLE_S
        while next_at <= end + 0.5:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if agent.poll() is not None:
                log = (directory / "agent.log").read_text()[-2000:]
                raise SystemExit(f"the agent exited ({agent.returncode}):\n{log}")
            sampler.take()
            next_at += SAMPLE_S
        await injector
        print("-- faults over; settling", flush=True)
        settle_end = time.monotonic() + SETTLE_S
        while time.monotonic() < settle_end:
            await asyncio.sleep(SAMPLE_S)
            last = sampler.take()
            if last.outbox == 0 and last.opened == last.resolved:
                break
        peak = peak_rss(agent.pid)
        if peak is not None:
            fault_log.append(f"agent peak RSS (VmHWM) {peak / 1e6:.1f} MB")
    finally:
        await control.close()
        await acker.stop()
    return sampler.samples, "\n".join(fault_log)


def slope_per_hour(samples: Sequence[Sample], value: Callable[[Sample], float]) -> float:
    if len(samples) < 2:
        return float("nan")
    return statistics.linear_regression([s.minute for s in samples], [value(s) for s in samples]).slope * 60


def report(samples: Sequence[Sample], minutes: float, command: str, layout: Layout, notes: str) -> None:
    window = [s for s in samples if s.minute <= minutes + 0.01]
    after_baseline = [s for s in window if s.minute >= BASELINE_MIN - 0.01]
    if len(after_baseline) < 2:
        raise SystemExit(f"too few samples after minute {BASELINE_MIN:g} for a fit: run longer (--minutes)")
    warm = [s for s in window if s.minute >= minutes / 2]
    base, last, final = after_baseline[0], window[-1], samples[-1]
    print(f"\n{command}\n{layout.describe()}\n{notes}")
    print(f"RSS at minute {base.minute:.1f} (baseline): {base.rss / 1e6:.1f} MB; "
          f"at minute {last.minute:.1f} (end): {last.rss / 1e6:.1f} MB ({(last.rss - base.rss) / 1e6:+.1f} MB)")
    print(f"agent CPU over the faults: {last.cpu:.1f} s in {last.minute:.1f} min "
          f"({100 * last.cpu / (60 * last.minute):.1f} % of a core)")
    print(f"{'fitted slope per hour':32} {'after minute ' + format(BASELINE_MIN, 'g'):>16} "
          f"{'2nd half (warm)':>16}  from -> to")
    series: list[tuple[str, Callable[[Sample], float], str]] = [
        ("RSS, MB", lambda s: s.rss / 1e6, ".1f"),
        ("open file descriptors", lambda s: float(s.fds), ".0f"),
        ("outbox file, MB", lambda s: s.outbox_bytes / 1e6, ".2f"),
        ("outbox WAL file, MB", lambda s: s.wal_bytes / 1e6, ".2f"),
    ]
    for label, value, fmt in series:
        print(f"{label:32} {slope_per_hour(after_baseline, value):>+16.2f} {slope_per_hour(warm, value):>+16.2f}  "
              f"{format(value(base), fmt)} -> {format(value(last), fmt)}")
    per_hour = slope_per_hour(warm, lambda s: s.rss / 1e6)
    verdict = "met" if per_hour < GOAL_MB_PER_H else "NOT met"
    print(f"RSS growth once warm (2nd half, {len(warm)} samples): {per_hour:+.2f} MB/h "
          f"(goal < {GOAL_MB_PER_H:g} MB/h: {verdict}; a run shorter than an hour fits noise as well)")
    drained = final.outbox == 0
    print(f"outbox depth: {last.outbox} at the end of the faults, {final.outbox} after settling "
          f"(goal: drains: {'met' if drained else 'NOT met'})")
    unresolved = final.opened - final.resolved
    print(f"incidents: {final.opened} opened, {final.resolved} resolved, {unresolved} still open "
          f"(goal: all resolved: {'met' if unresolved == 0 else 'NOT met'})")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60, help="how long faults are injected")
    parser.add_argument("--targets-scale", type=float, default=1.0, help="multiply footprint's 150/30/20 targets")
    args = parser.parse_args(argv)
    command = " ".join([".venv/bin/python bench/soak.py", *(argv if argv is not None else sys.argv[1:])])
    layout = Layout.scaled(args.targets_scale)
    print(f"soak bench: {layout.describe()}; a fault every {FAULT_EVERY_S:g} s for {args.minutes:g} min", flush=True)
    with Mosquitto() as broker, tempfile.TemporaryDirectory(prefix="lw-soak-") as tmp:
        directory = Path(tmp)
        config = directory / "agent.toml"
        flap = f'\n[flap]\nwindow = "{FLAP_WINDOW}"\n'
        config.write_text(agent_toml(layout, broker.port, directory / "agent-data") + flap)
        (directory / "plant.toml").write_text(plant_toml(layout))
        plant = start_plant(directory / "plant.toml")
        try:
            with (directory / "agent.log").open("w") as agent_log:
                agent = subprocess.Popen([str(LINEWARDEN), "agent", "run", "--config", str(config)], stderr=agent_log)
            try:
                samples, notes = asyncio.run(soak(layout, broker, agent, directory, args.minutes))
            finally:
                stop(agent)
        finally:
            stop(plant)
    report(samples, args.minutes, command, layout, notes)

if __name__ == "__main__":
    main()
