"""Scale-out efficiency: 1, 2 and 3 collector processes on one PostgreSQL sharing the ingest.

    .venv/bin/python bench/scaleout.py [--agents 20] [--batches 40] [--batch 50] [--repeat 1] [--quick]
                                       [--profile DIR]

For each count, a fresh PostgreSQL schema, a real Mosquitto and that many `linewarden collector run` processes
(`ingest.share_group` set when there are several; one collector runs as it does by default). In this process a
load generator plays `--agents` agents over MQTT: a birth each, then `--batches` batches of `--batch` events
(heartbeats and state changes), each agent at most WINDOW batches ahead of its ack, as the real forwarder
windows itself; so one agent's batches land on different collectors. Measured from the first batch until the
store holds every event and every agent's ack covers its last seq:
- events stored per collector CPU-second (the run time of the collector processes' threads from
  /proc/<pid>/task/*/schedstat, in ns), and per busy CPU-second (less what the same processes spent in IDLE_S
  without load, scaled to the run: their polling);
- that CPU split by thread, in µs per event: the event loop (decode, store, acks: ingest), paho's MQTT network
  thread, and the others; and the same total from psutil's 10 ms ticks, as the bench measured it before;
- idle CPU per collector in ms per second: what one process spends with nothing to do, its agents known
  (/proc/<pid>/task/*/schedstat, nanoseconds; Linux only);
- lock waits per 1,000 events: distinct (backend, statement) seen waiting on a lock (pg_stat_activity,
  wait_event_type 'Lock', sampled every SAMPLE_S; waits shorter than a sample may be missed).
`--profile DIR` runs each collector under cProfile (its event loop's thread) and prints, per collector count,
messages per group, statements sent to PostgreSQL per batch and the functions that take the most CPU per event.
Goal (on the first figure, idle cost included): each added collector keeps >= 0.9 x one collector's events per
CPU-second (this machine has 2 cores,
so efficiency is measured, not speed-up). Needs PostgreSQL (LINEWARDEN_TEST_POSTGRES) and mosquitto.
"""

from __future__ import annotations

import argparse
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import psutil
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from linewarden.wire import (  # noqa: E402
    Ack,
    Event,
    EventBatch,
    ack_topic,
    birth_topic,
    decode,
    encode,
    events_topic,
)
from simulators.broker import Mosquitto  # noqa: E402
from tests.integration.collector_helpers import birth, heartbeat, state_change  # noqa: E402

POSTGRES = os.environ.get("LINEWARDEN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SITE = "plant-s"
WINDOW = 4  # batches an agent sends ahead of its ack
SAMPLE_S = 0.02
IDLE_S = 5.0
SETTLE_S = 1.0  # after the births, before the idle window
START_S = 120.0
RUN_S = 600.0
GOAL = 0.9
# Syscalls paho's network thread waits in (x86_64: poll, select, pselect6, ppoll); the event loop waits in epoll.
SELECT_SYSCALLS = frozenset({"7", "23", "270", "271"})


@dataclass
class Result:
    collectors: int
    events: int
    wall_s: float
    cpu_s: float  # schedstat, every thread of the collector processes
    tick_cpu_s: float  # the same from psutil (user + system, 10 ms ticks), as the bench measured before
    loop_s: float  # of cpu_s: the main threads (the event loop: decode, store, acks)
    mqtt_s: float  # of cpu_s: paho's network threads
    lock_waits: int
    idle_cpu_s: float  # of cpu_s, what the collectors spend idle over as long (polling loops)
    idle_ms_per_s: float  # one collector's CPU while idle, ms per second (the mean of the processes)
    batches: int
    groups: int  # transactions that stored events, all collectors together
    runs: int  # an agent's batches stored in one group

    @property
    def per_cpu_s(self) -> float:
        return self.events / self.cpu_s if self.cpu_s else 0.0

    @property
    def per_busy_cpu_s(self) -> float:
        busy = self.cpu_s - self.idle_cpu_s
        return self.events / busy if busy > 0 else 0.0

    def us_per_event(self, seconds: float) -> float:
        return 1e6 * seconds / self.events if self.events else 0.0

    @property
    def waits_per_1000(self) -> float:
        return 1000 * self.lock_waits / self.events if self.events else 0.0


def collector_toml(n: int, data_dir: Path, port: int, url: str, shared: bool) -> str:
    ingest = '[ingest]\nshare_group = "bench"\n' if shared else ""
    return f"""
contracts = []
calendars = []
{ingest}
[collector]
id = "bench-{n}"
data_dir = "{data_dir}"
database_url = "{url}"

[broker]
host = "127.0.0.1"
port = {port}

[api]
host = "127.0.0.1"
port = 0
"""


class Load:
    """`agents` agents publishing over one MQTT connection, each windowed by its acks."""

    def __init__(self, port: int, agents: int, batches: int, size: int) -> None:
        self.agents = [f"agent-{i:03d}" for i in range(agents)]
        self.batches, self.size = batches, size
        self.acked = dict.fromkeys(self.agents, 0)
        self.changed = threading.Condition()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"bench-load-{port}")
        self.client.max_inflight_messages_set(100)
        self.client.on_message = self._on_ack
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        for agent in self.agents:
            self.client.subscribe(ack_topic(SITE, agent), qos=1)

    @property
    def total(self) -> int:
        return len(self.agents) * self.batches * self.size

    def _on_ack(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        agent = message.topic.split("/")[-2]
        through = decode(Ack, bytes(message.payload)).through
        with self.changed:
            self.acked[agent] = max(self.acked[agent], through)
            self.changed.notify_all()

    def births(self) -> None:
        now = int(time.time() * 1000)
        for agent in self.agents:
            self.client.publish(birth_topic(SITE, agent), encode(birth(SITE, agent, ts=now)), qos=1).wait_for_publish()

    def run(self, deadline: float) -> None:
        """Send every batch, each agent at most WINDOW batches ahead of its ack; return once all are acked."""
        sent = dict.fromkeys(self.agents, 0)  # batches sent per agent
        start = int(time.time() * 1000)
        last = self.batches * self.size
        while True:
            with self.changed:
                if all(self.acked[a] >= last for a in self.agents):
                    return
                ready = [a for a in self.agents
                         if sent[a] < self.batches and (sent[a] - self.acked[a] // self.size) < WINDOW]
                if not ready:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"acks stopped short: {self.acked}")
                    self.changed.wait(1.0)
                    continue
            for agent in ready:
                first = sent[agent] * self.size + 1
                events: list[Event] = [state_change(s, start + s) if s % 10 == 0 else heartbeat(s, start + s)
                          for s in range(first, first + self.size)]
                payload = encode(EventBatch(agent=agent, site=SITE, epoch="e1", boot="b1", events=events))
                self.client.publish(events_topic(SITE, agent), payload, qos=1)
                sent[agent] += 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class LockWaits(threading.Thread):
    """Counts distinct (backend, statement start) seen waiting on a lock in `schema`'s collectors."""

    def __init__(self, app: str) -> None:
        super().__init__(daemon=True)
        self.app = app
        self.seen: set[tuple[int, str]] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            while not self.stop.wait(SAMPLE_S):
                rows = conn.execute(
                    "SELECT pid, query_start::text FROM pg_stat_activity WHERE application_name = %s"
                    " AND wait_event_type = 'Lock'", (self.app,)).fetchall()
                self.seen.update((int(pid), str(at)) for pid, at in rows)


def _cpu(procs: Sequence[psutil.Process]) -> float:
    return float(sum(t.user + t.system for t in (p.cpu_times() for p in procs)))


def _thread_ns(procs: Sequence[psutil.Process]) -> dict[int, int]:
    """CPU time of each thread of the processes in ns (schedstat: finer than psutil's 10 ms clock ticks)."""
    times = {}
    for p in procs:
        for stat in Path(f"/proc/{p.pid}/task").glob("*/schedstat"):
            try:
                times[int(stat.parent.name)] = int(stat.read_text().split()[0])
            except (OSError, ValueError, IndexError):  # a thread that ended meanwhile
                continue
    return times


def _run_ns(procs: Sequence[psutil.Process]) -> int:
    return sum(_thread_ns(procs).values())


def _network_threads(procs: Sequence[psutil.Process]) -> set[int]:
    """Each process's thread that waits in select or poll while idle: paho's network loop."""
    found: set[int] = set()
    for _ in range(50):
        for p in procs:
            for call in Path(f"/proc/{p.pid}/task").glob("*/syscall"):
                tid = int(call.parent.name)
                try:
                    if tid != p.pid and call.read_text().split()[0] in SELECT_SYSCALLS:
                        found.add(tid)
                except (OSError, IndexError):
                    continue
        if len(found) >= len(procs):
            break
        time.sleep(SAMPLE_S)
    return found


def wait_connected(logs: Sequence[Path], procs: Sequence[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + START_S
    while not all("MQTT connected" in p.read_text(errors="replace") for p in logs):
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            raise SystemExit("a collector did not start:\n" + "\n".join(p.read_text()[-2000:] for p in logs))
        time.sleep(0.2)


def run_one(count: int, agents: int, batches: int, size: int, profile: Path | None = None) -> Result:
    schema = f"lw_scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in POSTGRES else "?"
    url = f"{POSTGRES}{joiner}application_name={schema}&options=-csearch_path%3D{schema}"
    workdir = Path(tempfile.mkdtemp(prefix="lw-scaleout-"))
    broker = Mosquitto()
    broker.start()
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    load: Load | None = None
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        for n in range(1, count + 1):
            config = workdir / f"collector-{n}.toml"
            data_dir = workdir / f"data-{n}"
            data_dir.mkdir()
            config.write_text(collector_toml(n, data_dir, broker.port, url, shared=count > 1))
            log = workdir / f"collector-{n}.log"
            logs.append(log)
            python = [sys.executable, "-m", "linewarden.cli"]
            if profile is not None:  # profiled from SIGUSR1 to SIGUSR2: the load only
                python = [sys.executable, str(REPO / "bench" / "collector_profiled.py"),
                          str(profile / f"collectors-{count}-{n}-{uuid.uuid4().hex[:6]}.prof")]
            with log.open("w") as out:
                procs.append(subprocess.Popen(
                    [*python, "collector", "run", "--config", str(config)],
                    env=env, stdout=out, stderr=subprocess.STDOUT))
            if n == 1:
                wait_connected(logs, procs)  # migrated: the others find the schema ready
        wait_connected(logs, procs)
        load = Load(broker.port, agents, batches, size)
        load.births()
        waits = LockWaits(schema)
        waits.start()
        cpu = [psutil.Process(p.pid) for p in procs]
        time.sleep(SETTLE_S)
        idle_from, idle_ns = time.monotonic(), _run_ns(cpu)
        time.sleep(IDLE_S)  # the idle cost of the collectors' loops (dispatch, timers, liveness, API)
        idle_rate = (_run_ns(cpu) - idle_ns) / 1e9 / (time.monotonic() - idle_from)
        network = _network_threads(cpu)
        if profile is not None:
            for p in procs:
                p.send_signal(signal.SIGUSR1)
        ticks_before, threads_before = _cpu(cpu), _thread_ns(cpu)
        started = time.monotonic()
        load.run(started + RUN_S)
        wall = time.monotonic() - started
        tick_cpu_s = _cpu(cpu) - ticks_before
        used = {tid: (ns - threads_before.get(tid, 0)) / 1e9 for tid, ns in _thread_ns(cpu).items()}
        if profile is not None:
            for p in procs:
                p.send_signal(signal.SIGUSR2)
        loop_s = sum(used.get(p.pid, 0.0) for p in cpu)
        mqtt_s = sum(used.get(tid, 0.0) for tid in network)
        waits.stop.set()
        waits.join()
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {schema}")
            # Each group commits in one transaction, so the events' xmin tells the groups, and (xmin, agent) the runs.
            row = conn.execute("SELECT COUNT(*), COUNT(DISTINCT xmin::text),"
                               " COUNT(DISTINCT (xmin::text, agent)) FROM events").fetchone()
            stored, groups, runs = (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)
        if stored != load.total:
            raise SystemExit(f"{count} collector(s): {stored} of {load.total} events stored")
        return Result(count, stored, wall, sum(used.values()), tick_cpu_s, loop_s, mqtt_s, len(waits.seen),
                      idle_rate * wall, 1000 * idle_rate / count, stored // size, groups, runs)
    finally:
        if load is not None:
            load.close()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        shutil.rmtree(workdir, ignore_errors=True)


def profile_report(files: Sequence[Path], events: int, batches: int) -> list[str]:
    """From the collectors' profiles of one count: groups, statements and publishes per batch, and the functions
    with the most CPU per event (own time, every collector of the count together)."""
    stats = pstats.Stats(*map(str, files))
    table: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]

    def calls(path_end: str, name: str) -> int:
        return sum(v[1] for (path, _, func), v in table.items() if path.endswith(path_end) and func == name)

    groups = calls("collector/ingest.py", "handle_many")
    messages = calls("collector/ingest.py", "_one")
    transactions = calls("psycopg/transaction.py", "__enter__")
    statements = sum(calls("psycopg/cursor.py", f) for f in ("execute", "executemany", "copy")) + 2 * transactions
    publishes = calls("linewarden/mqtt.py", "publish")
    lines = [f"  groups {groups}, messages per group {messages / groups if groups else 0:.1f},"
             f" statements per batch {statements / batches:.2f}, publishes per batch {publishes / batches:.2f}"]
    top = sorted(table.items(), key=lambda kv: kv[1][2], reverse=True)[:15]
    for (path, line, func), (_, ncalls, tottime, cumtime, _) in top:
        where = f"{'/'.join(Path(path).parts[-2:])}:{line}({func})" if line else func
        lines.append(f"  {1e6 * tottime / events:8.2f} µs/event own {1e6 * cumtime / events:8.2f} cumulative"
                     f" {ncalls:>9} calls  {where}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch", type=int, default=50, help="events per batch")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of 1, 2, 3 collectors; the best of each")
    parser.add_argument("--quick", action="store_true", help="10 agents x 10 batches")
    parser.add_argument("--profile", type=Path, help="run the collectors under cProfile, profiles in this dir")
    args = parser.parse_args(argv)
    agents, batches = (10, 10) if args.quick else (args.agents, args.batches)
    try:
        with psycopg.connect(POSTGRES, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        raise SystemExit(f"PostgreSQL unavailable at {POSTGRES}: {exc}") from None
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    # Rounds alternate the counts, so load from outside falls on all of them alike; the best round of each counts.
    rounds = [[run_one(n, agents, batches, args.batch, args.profile) for n in (1, 2, 3)] for _ in range(args.repeat)]
    results = [max((r[i] for r in rounds), key=lambda x: x.per_cpu_s) for i in range(3)]
    base, busy_base = results[0].per_cpu_s, results[0].per_busy_cpu_s
    print(f"{agents} agents x {batches} batches x {args.batch} events = {results[0].events} events per run,"
          f" best of {args.repeat} round(s)")
    print(f"{'collectors':>10} {'wall s':>7} {'CPU s':>6} {'idle CPU s':>10} {'idle ms/s each':>14}"
          f" {'events/CPU-s':>12} {'x one':>6} {'events/busy CPU-s':>17} {'x one':>6} {'lock waits/1k':>13}")
    ok = True
    for r in results:
        ratio = r.per_cpu_s / base if base else 0.0
        busy_ratio = r.per_busy_cpu_s / busy_base if busy_base else 0.0
        ok = ok and (r.collectors == 1 or ratio >= GOAL)
        print(f"{r.collectors:>10} {r.wall_s:>7.1f} {r.cpu_s:>6.2f} {r.idle_cpu_s:>10.2f} {r.idle_ms_per_s:>14.2f}"
              f" {r.per_cpu_s:>12.0f}"
              f" {ratio:>6.2f} {r.per_busy_cpu_s:>17.0f} {busy_ratio:>6.2f} {r.waits_per_1000:>13.2f}")
    print("Every round: CPU per event in µs by thread (schedstat), the total from psutil's ticks; batches per group")
    print("(one transaction) and per run (an agent's batches stored as one, with one ack):")
    print(f"{'collectors':>10} {'event loop':>10} {'MQTT net':>9} {'other':>6} {'total':>6} {'ticks':>6}"
          f" {'events/CPU-s':>12} {'batches/group':>13} {'batches/run':>11}")
    for r in (r for round_ in rounds for r in round_):
        print(f"{r.collectors:>10} {r.us_per_event(r.loop_s):>10.2f} {r.us_per_event(r.mqtt_s):>9.2f}"
              f" {r.us_per_event(r.cpu_s - r.loop_s - r.mqtt_s):>6.2f} {r.us_per_event(r.cpu_s):>6.2f}"
              f" {r.us_per_event(r.tick_cpu_s):>6.2f} {r.per_cpu_s:>12.0f} {r.batches / max(r.groups, 1):>13.1f}"
              f" {r.batches / max(r.runs, 1):>11.2f}")
    if args.profile is not None:
        for n in (1, 2, 3):
            print(f"profile, {n} collector(s), the event loop's thread under cProfile (all rounds):")
            files = sorted(args.profile.glob(f"collectors-{n}-*.prof"))
            runs = [r for round_ in rounds for r in round_ if r.collectors == n]
            events = sum(r.events for r in runs)
            print("\n".join(profile_report(files, events, events // args.batch)))
    print(f"goal: each added collector >= {GOAL} x one collector's events per CPU-second: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
