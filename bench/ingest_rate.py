"""Collector ingest rate: agents publish event batches over MQTT, the collector stores and acks them.

    .venv/bin/python bench/ingest_rate.py [--store sqlite|postgres] [--agents 50] [--events 200000] [--batch 100]
        [--profile]

Starts its own Mosquitto and a CollectorService (collector/service.py) on a fresh store in this process: SQLite
in a temp dir, or (`--store postgres`) a schema of its own in the PostgreSQL at $LINEWARDEN_TEST_POSTGRES
(default postgresql://postgres@127.0.0.1:5432/test), dropped at the end. A second process plays the agents: one
MQTT connection per agent (linewarden.mqtt), a birth each, then every agent's events as pre-encoded EventBatch
messages with consecutive seqs, at most `--window` batches waiting for their PUBACK per agent (the Forwarder's
rule). The events are what an agent with 20
targets sends: per minute one heartbeat and 20 metrics, and a state change on about 1 % of target-minutes.

Prints, for the same events:
- collector: events/s from the first batch published until every agent's retained ack says
  through = its last seq, checked against the rows in the store; CPU seconds and RSS of the collector process;
- Ingest.handle without a broker: the same payloads handed to collector/ingest.py directly (decode, store,
  ack computed), on another fresh store: the collector's cost without MQTT;
- decode + body JSON: CPU per event to decode the same batches and write each body's JSON, as ingest does it
  (the wire's msgspec Structs, linewarden/wire.py);
- baseline: the same rows inserted raw, one transaction per batch, into a fresh store holding only the
  collector's own `events` table (same columns, primary key and index). SQLite: executemany, WAL,
  synchronous=NORMAL. PostgreSQL: COPY, its fastest bulk path (it skips no stored key: the collector must).
The ratio collector / baseline is the figure with a goal (>= 0.5), by wall time and, as the box is shared with
other work, by CPU time of this process (SQLite runs inside it; PostgreSQL's server CPU is not counted).
`--profile` runs the collector's MQTT phase under cProfile, every thread of the process (the event loop and
paho's network thread), and prints where its time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import os
import pstats
import random
import resource
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
import psycopg  # noqa: E402

from collector.ingest import Ingest  # noqa: E402
from collector.service import CollectorService  # noqa: E402
from collector.store.base import Store  # noqa: E402
from collector.store.migrations import CORE, statements  # noqa: E402
from collector.store.postgres import PostgresStore  # noqa: E402
from collector.store.sqlite import SqliteStore  # noqa: E402
from linewarden.config.base import BrokerConfig  # noqa: E402
from linewarden.config.collector import CollectorConfig  # noqa: E402
from linewarden.mqtt import MqttClient  # noqa: E402
from linewarden.wire import (  # noqa: E402
    COLLECTOR_STATE_TOPIC,
    EventBatch,
    birth_topic,
    decode,
    encode,
    events_topic,
    parse_agent_topic,
)
from simulators.broker import Mosquitto  # noqa: E402

TARGETS = 20
SITES = 5
EPOCH = "e1"
BOOT = "b1"
STATE_CHANGE_P = 0.01
GOAL = 0.5
POSTGRES = os.environ.get("LINEWARDEN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
DONE_TIMEOUT_S = 900.0
RECEIVED_AT = 1_780_000_000_000  # stamped on the baseline's rows (the collector stamps its own clock)


@dataclass(frozen=True)
class Agent:
    site: str
    agent: str


def agents(n: int) -> list[Agent]:
    return [Agent(f"plant-{i % SITES + 1}", f"agent-{i:03d}") for i in range(n)]


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def agent_events(index: int, count: int, end_ms: int) -> list[dict[str, Any]]:
    """`count` events of one agent, seq 1..count, measured minute by minute up to `end_ms`."""
    rng = random.Random(index)
    targets = [f"t{j:02d}" for j in range(TARGETS)]
    assets = {t: f"a{index:03d}-{t}" for t in targets}
    state = dict.fromkeys(targets, "UP")
    minutes = count // (TARGETS + 1) + 2
    minute = end_ms - minutes * 60_000
    out: list[dict[str, Any]] = []
    while len(out) < count:
        ts = minute
        out.append({"type": "heartbeat", "ts": ts, "body": {"interval_s": 60, "states": dict(state)}})
        for t in targets:
            if rng.random() < STATE_CHANGE_P:
                new = rng.choice([s for s in ("UP", "DOWN", "DEGRADED") if s != state[t]])
                at = ts + rng.randrange(60_000)
                body = {"target": t, "asset": assets[t], "from": state[t], "to": new, "reason": "probe", "at": at}
                out.append({"type": "state_change", "ts": at, "body": body})
                state[t] = new
            failures = 0 if state[t] == "UP" else 12
            out.append(
                {
                    "type": "metrics",
                    "ts": ts + 60_000,
                    "body": {
                        "target": t,
                        "minute": ts,
                        "probes": 12,
                        "failures": failures,
                        "latency_p50_ms": round(rng.uniform(1, 5), 2),
                        "latency_p95_ms": round(rng.uniform(5, 20), 2),
                        "latency_max_ms": round(rng.uniform(20, 80), 2),
                    },
                }
            )
        minute += 60_000
    del out[count:]
    for seq, event in enumerate(out, start=1):
        event["seq"] = seq
    return out


def workload(n_agents: int, n_events: int, end_ms: int) -> Iterator[tuple[Agent, list[dict[str, Any]]]]:
    for i, (a, count) in enumerate(zip(agents(n_agents), _split(n_events, n_agents), strict=True)):
        yield a, agent_events(i, count, end_ms)


def batch_payloads(a: Agent, events: list[dict[str, Any]], size: int) -> list[bytes]:
    head = {"v": 1, "agent": a.agent, "site": a.site, "epoch": EPOCH, "boot": BOOT}
    return [
        json.dumps({**head, "events": events[i : i + size]}, separators=(",", ":")).encode()
        for i in range(0, len(events), size)
    ]


def birth_payload(a: Agent, index: int, ts: int) -> bytes:
    targets = [
        {"id": f"t{j:02d}", "kind": "opcua", "asset": f"a{index:03d}-t{j:02d}", "criticality": "high"}
        for j in range(TARGETS)
    ]
    birth = {
        "v": 1, "agent": a.agent, "site": a.site, "epoch": EPOCH, "boot": BOOT, "ts": ts, "version": "bench",
        "config_hash": "-", "heartbeat_interval_s": 60, "targets": targets, "acked_through": 0,
    }
    return json.dumps(birth, separators=(",", ":")).encode()


def interleaved(per_agent: list[tuple[Agent, list[bytes]]]) -> list[tuple[str, bytes]]:
    """(topic, payload) in the order many agents' batches arrive: round robin."""
    out: list[tuple[str, bytes]] = []
    longest = max(len(p) for _, p in per_agent)
    for i in range(longest):
        out.extend((events_topic(a.site, a.agent), p[i]) for a, p in per_agent if i < len(p))
    return out


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# ------------------------------------------------------------ the agents (child process)


async def publish(port: int, n_agents: int, n_events: int, size: int, window: int) -> None:
    start_ms = now_ms()
    per_agent = [(a, batch_payloads(a, ev, size)) for a, ev in workload(n_agents, n_events, start_ms)]
    for payload in per_agent[0][1]:
        decode(EventBatch, payload)  # the generator writes valid wire protocol
    last_seq = {(a.site, a.agent): n for a, n in zip(agents(n_agents), _split(n_events, n_agents), strict=True)}
    broker = BrokerConfig(port=port)
    through: dict[tuple[str, str], int] = {}
    births_acked = asyncio.Event()
    all_acked = asyncio.Event()
    collector_online = asyncio.Event()

    def on_ack(topic: str, payload: bytes) -> None:
        site, agent, _ = parse_agent_topic(topic)
        through[(site, agent)] = int(json.loads(payload)["through"])
        if len(through) == n_agents:
            births_acked.set()
            if all(through[k] >= last_seq[k] for k in last_seq):
                all_acked.set()

    watcher = MqttClient(broker, client_id="bench-acks")
    watcher.subscribe("lw/v1/+/+/ack", on_ack)
    watcher.subscribe(COLLECTOR_STATE_TOPIC, lambda _t, p: collector_online.set() if b'"online":true' in p else None)
    await watcher.start()
    await asyncio.wait_for(collector_online.wait(), 30)

    clients = []
    for a, _ in per_agent:
        client = MqttClient(broker, client_id=f"bench-{a.site}-{a.agent}")
        await client.start()
        clients.append(client)
    deadline = time.monotonic() + 30
    while not all(c.connected for c in clients):
        if time.monotonic() > deadline:
            raise SystemExit("the agents could not connect to the broker")
        await asyncio.sleep(0.05)
    for i, (client, (a, _)) in enumerate(zip(clients, per_agent, strict=True)):
        await client.publish(birth_topic(a.site, a.agent), birth_payload(a, i, start_ms))
    await asyncio.wait_for(births_acked.wait(), 60)

    async def send(client: MqttClient, a: Agent, payloads: list[bytes]) -> None:
        slots = asyncio.Semaphore(window)
        futures = []
        for p in payloads:
            await slots.acquire()
            future = client.publish(events_topic(a.site, a.agent), p)
            future.add_done_callback(lambda _f: slots.release())
            futures.append(future)
        await asyncio.gather(*futures)

    print("start", flush=True)
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(send(c, a, p) for c, (a, p) in zip(clients, per_agent, strict=True)))
    published = time.perf_counter() - t0
    await asyncio.wait_for(all_acked.wait(), DONE_TIMEOUT_S)
    elapsed = time.perf_counter() - t0
    result = {"seconds": elapsed, "published_s": published, "cpu_s": time.process_time() - cpu0}
    print("done " + json.dumps(result), flush=True)
    for client in [*clients, watcher]:
        await client.stop()


# ------------------------------------------------------------ the collector (this process)


class Stores:
    """Fresh stores for the bench's passes, of the kind `--store` names, removed at the end."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind, self.directory = kind, directory
        self.schemas: list[str] = []

    def open(self, name: str) -> Store:
        if self.kind == "sqlite":
            return SqliteStore(self.directory / f"{name}.db")
        schema = f"lw_bench_{os.getpid()}_{name}"
        self.schemas.append(schema)
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        return PostgresStore(POSTGRES, schema=schema)

    def drop(self) -> None:
        if self.schemas:
            with psycopg.connect(POSTGRES, autocommit=True) as conn:
                for schema in self.schemas:
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


class GcTime:
    """CPU seconds this process spends in the cyclic garbage collector while it is on, and collections by
    generation."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __enter__(self) -> GcTime:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.seconds += time.thread_time() - self._started
            self.collections[info["generation"]] += 1


class ThreadProfiles:
    """cProfile of every thread started while it is on (paho's network thread), beside the caller's own."""

    def __init__(self) -> None:
        self.profiles: list[tuple[str, cProfile.Profile]] = []
        self._run: Callable[[threading.Thread], None] = threading.Thread.run

    def __enter__(self) -> ThreadProfiles:
        run, profiles = self._run, self.profiles

        def profiled(thread: threading.Thread) -> None:
            profiler = cProfile.Profile(time.thread_time)
            profiles.append((thread.name, profiler))
            profiler.runcall(run, thread)

        threading.Thread.run = profiled  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        threading.Thread.run = self._run  # type: ignore[method-assign,assignment]


async def collector_run(port: int, stores: Stores, args: argparse.Namespace) -> dict[str, Any]:
    store = stores.open("collector")
    store.migrate()
    config = CollectorConfig.model_validate(
        {"collector": {"data_dir": str(stores.directory)}, "broker": {"port": port}}
    )
    threads = ThreadProfiles() if args.profile else None
    with threads or contextlib.nullcontext():
        service = CollectorService(config, store)
        await service.start()
    loop_profile = cProfile.Profile(time.thread_time) if args.profile else None
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--publisher", str(port), "--agents", str(args.agents),
        "--events", str(args.events), "--batch", str(args.batch), "--window", str(args.window),
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    cpu0 = t0 = 0.0
    threads0: dict[int, float] = {}
    result: dict[str, Any] = {}
    collected = GcTime()
    try:
        while line := (await child.stdout.readline()).decode():
            if line.startswith("start"):
                cpu0, t0, threads0 = time.process_time(), time.perf_counter(), thread_cpu()
                collected.__enter__()
                if loop_profile is not None:
                    loop_profile.enable()
            elif line.startswith("done "):
                collected.__exit__()
                if loop_profile is not None:
                    loop_profile.disable()
                result = {**json.loads(line[5:]), "collector_cpu_s": time.process_time() - cpu0,
                          "collector_wall_s": time.perf_counter() - t0}
                spent = {i: s - threads0.get(i, 0.0) for i, s in thread_cpu().items()}
                loop_s = spent.pop(threading.get_native_id(), 0.0)
                result["loop_cpu_s"], result["other_cpu_s"] = loop_s, sum(spent.values())
                result["gc_s"], result["gc_collections"] = collected.seconds, collected.collections
        if await child.wait() != 0 or not result:
            raise SystemExit(f"the publisher process failed (exit {child.returncode})")
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    result["rss_mb"] = psutil.Process().memory_info().rss / 2**20
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    await service.stop()
    with store.reader() as sql:
        stored = sql.query("SELECT COUNT(*) AS n FROM events")[0]["n"]
        acked = sql.query("SELECT SUM(through) AS n FROM acks")[0]["n"]
    store.close()
    if stored != args.events or acked != args.events:
        raise SystemExit(f"expected {args.events} events stored and acked, found {stored} stored, {acked} acked")
    if loop_profile is not None and threads is not None:
        result["profiles"] = [("event loop (main thread)", loop_profile), *threads.profiles]
    return result


def thread_cpu() -> dict[int, float]:
    """CPU seconds of each thread of this process so far, by native thread id."""
    return {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}


def print_profiles(profiles: list[tuple[str, cProfile.Profile]]) -> None:
    """Each thread's profile: the event loop's over the MQTT phase, the others' over their whole life (their
    `select` is waiting for the socket, not work)."""
    for name, profiler in profiles:
        stats = pstats.Stats(profiler, stream=sys.stdout)
        print(f"\n{name}: {stats.total_tt:.2f} s profiled, top 15 by own time")  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_stats(40)


def direct_ingest(stores: Stores, messages: list[tuple[str, bytes]], n: int) -> float:
    store = stores.open("direct")
    store.migrate()
    ingest = Ingest(store, CollectorConfig().liveness, watching_since=now_ms())
    start = time.perf_counter()
    for topic, payload in messages:
        ingest.handle(topic, payload, now_ms())
    rate = n / (time.perf_counter() - start)
    store.close()
    return rate


def baseline_batches(per_agent: list[tuple[Agent, list[dict[str, Any]]]], size: int) -> list[list[tuple[Any, ...]]]:
    """The events rows of every batch, in the order the agents' batches arrive."""
    batches: list[list[tuple[Any, ...]]] = []
    rows_of = {
        a: [
            (a.site, a.agent, EPOCH, e["seq"], BOOT, e["ts"], e["type"],
             json.dumps(e["body"], separators=(",", ":"), sort_keys=True), RECEIVED_AT)
            for e in events
        ]
        for a, events in per_agent
    }
    longest = max(len(r) for r in rows_of.values())
    for i in range(0, longest, size):
        batches.extend(rows[i : i + size] for rows in rows_of.values() if i < len(rows))
    return batches


EVENT_COLUMNS = ("site", "agent", "epoch", "seq", "boot", "ts", "type", "body", "received_at")
INSERT_EVENTS = (
    "INSERT INTO events (site, agent, epoch, seq, boot, ts, type, body, received_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, agent, epoch, seq) DO NOTHING"
)
EVENTS_DDL = [s for s in statements(CORE[0].sql) if s.startswith(("CREATE TABLE events ", "CREATE INDEX events_ts "))]


def baseline(stores: Stores, batches: list[list[tuple[Any, ...]]]) -> tuple[float, float]:
    """Events per second of wall time and per CPU second of this process."""
    n = sum(len(b) for b in batches)
    if stores.kind == "sqlite":
        db = sqlite3.connect(stores.directory / "baseline.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        for stmt in EVENTS_DDL:
            db.execute(stmt)
        cpu0, start = time.process_time(), time.perf_counter()
        for rows in batches:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(INSERT_EVENTS, rows)
            db.execute("COMMIT")
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
        db.close()
        return n / wall, n / cpu
    store = stores.open("baseline")  # for the schema; the inserts go through a connection of its own
    store.close()
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {stores.schemas[-1]}")
        for stmt in EVENTS_DDL:
            conn.execute(stmt)
        copy_sql = f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
        cpu0, start = time.process_time(), time.perf_counter()
        for rows in batches:
            with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return n / wall, n / cpu


def decode_cost(messages: list[tuple[str, bytes]], n: int) -> float:
    """CPU µs per event to decode the batches and write their bodies' JSON, as ingest does it."""
    payloads = [p for t, p in messages if t.endswith("/events")]
    cpu0 = time.process_time()
    for p in payloads:
        [encode(e.body).decode() for e in decode(EventBatch, p).events]
    return (time.process_time() - cpu0) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=100, help="events per EventBatch (and per baseline txn)")
    parser.add_argument("--window", type=int, default=10, help="batches per agent waiting for their PUBACK")
    parser.add_argument("--profile", action="store_true", help="cProfile the collector process, every thread")
    parser.add_argument("--publisher", type=int, help=argparse.SUPPRESS)  # internal: be the agents
    args = parser.parse_args()
    if args.events < args.agents:
        parser.error("--events must be at least --agents")
    if args.publisher:
        asyncio.run(publish(args.publisher, args.agents, args.events, args.batch, args.window))
        return
    n = args.events
    with Mosquitto() as broker, tempfile.TemporaryDirectory(prefix="lw-bench-") as tmp:
        stores = Stores(args.store, Path(tmp))
        try:
            print(f"collector ingest bench on {args.store}: {n:,} events from {args.agents} agents in batches of "
                  f"{args.batch}, window {args.window}, mosquitto on {broker.port}")
            r = asyncio.run(collector_run(broker.port, stores, args))
            collector = n / r["seconds"]
            per_agent = list(workload(args.agents, n, now_ms()))
            births = [(birth_topic(a.site, a.agent), birth_payload(a, i, now_ms()))
                      for i, (a, _) in enumerate(per_agent)]
            messages = births + interleaved([(a, batch_payloads(a, ev, args.batch)) for a, ev in per_agent])
            direct = direct_ingest(stores, messages, n)
            decode_us = decode_cost(messages, n)
            base, base_cpu = baseline(stores, baseline_batches(per_agent, args.batch))
        finally:
            stores.drop()
        per_cpu = n / r["collector_cpu_s"]
        print(f"collector over MQTT      {collector:>10,.0f} events/s  ({r['seconds']:.1f} s until all acked; "
              f"publishing took {r['published_s']:.1f} s)")
        print(f"  collector process      {r['collector_cpu_s']:>10.2f} CPU s "
              f"({per_cpu:,.0f} events per CPU s); RSS {r['rss_mb']:.0f} MB after ingest, "
              f"peak {r['peak_rss_mb']:.0f} MB")
        print(f"    of which             {r['loop_cpu_s']:>10.2f} CPU s in the event loop's thread (decode, store, "
              f"acks), {r['other_cpu_s']:.2f} in the others (paho's network thread); "
              f"{r['gc_s']:.2f} in the garbage collector ({'/'.join(map(str, r['gc_collections']))} collections "
              "by generation)")
        print(f"  agents process         {r['cpu_s']:>10.1f} CPU s")
        note = " (the collector was under cProfile)" if args.profile else ""
        print(f"Ingest.handle, no broker {direct:>10,.0f} events/s, one transaction per message")
        print(f"decode + body JSON       {decode_us:>10.2f} µs per event of CPU as ingest does it")
        how = "executemany" if args.store == "sqlite" else "COPY       "
        print(f"baseline {how}     {base:>10,.0f} events/s  ({args.batch} rows per transaction; "
              f"{base_cpu:,.0f} events per CPU s of this process)")
        for what, ratio in (("wall time", collector / base), ("CPU time", per_cpu / base_cpu)):
            verdict = "met" if ratio >= GOAL else "NOT met"
            print(f"ratio collector/baseline {ratio:>10.3f}     by {what} (goal >= {GOAL}: {verdict}){note}")
        if "profiles" in r:
            print_profiles(r["profiles"])


if __name__ == "__main__":
    main()
