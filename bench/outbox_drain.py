"""Outbox drain rate: fill an outbox with N events, forward them to a test collector, compare with raw paho.

    .venv/bin/python bench/outbox_drain.py [--events N]      (default 1,000,000)

Starts its own Mosquitto. Prints, for the same N events:
- fill: append rate into the SQLite outbox (synchronous=FULL, 1,000 events per transaction), and single-event
  appends with synchronous FULL vs NORMAL (the measurement behind the outbox's FULL);
- drain: events/s through the Forwarder (EventBatch of batch_max_events, QoS 1, window) to a collector
  (tests/ackers.py, in its own process) until every event is acked by the collector and deleted;
- raw: paho QoS 1 publishing of the same event bytes, one message per event, at most 20 un-PUBACKed
  (the perf-anchors B3 "window" mode; no subscriber, no store, no collector ack). The baseline imports paho
  directly, on purpose: it measures what linewarden.mqtt adds nothing to.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from agent.forwarder import Forwarder  # noqa: E402
from agent.outbox import Outbox  # noqa: E402
from linewarden.config.agent import AgentConfig  # noqa: E402
from linewarden.config.load import convert  # noqa: E402
from linewarden.mqtt import MqttClient  # noqa: E402
from linewarden.wire import COLLECTOR_STATE_TOPIC, Birth, MetricsBody  # noqa: E402
from simulators.broker import Mosquitto  # noqa: E402
from tests.ackers import Acker  # noqa: E402

T0 = time.time_ns() // 1_000_000  # recent: events older than the outbox's max_age would be dropped


def body(i: int) -> MetricsBody:
    return MetricsBody(
        target="plc-line3-gateway", minute=T0 + i * 60_000, probes=12, failures=i % 3,
        latency_p50_ms=3.2, latency_p95_ms=8.9, latency_max_ms=14.1,
    )


def config(port: int) -> AgentConfig:
    return convert(AgentConfig,
        {
            "agent": {"id": "bench", "site": "plant-1"},
            "broker": {"port": port},
            "outbox": {"max_events": 10_000_000},
            "assets": [{"id": "line-3", "criticality": "high"}],
            "targets": [{"id": "host", "asset": "line-3", "type": "host"}],
        }
    )


def fill(box: Outbox, n: int) -> float:
    start = time.perf_counter()
    for first in range(0, n, 1000):
        box.append_many([("metrics", body(i), T0) for i in range(first, min(n, first + 1000))])
    return n / (time.perf_counter() - start)


def single_appends(directory: Path, synchronous: str, n: int = 3000) -> float:
    box = Outbox(directory / f"single-{synchronous}.db", config(1).outbox)
    box._db.execute(f"PRAGMA synchronous={synchronous}")  # bench only: the outbox itself always uses FULL
    events = [body(i) for i in range(n)]
    start = time.perf_counter()
    for event in events:
        box.append("metrics", event, T0)
    rate = n / (time.perf_counter() - start)
    box.close()
    return rate


async def drain(box: Outbox, cfg: AgentConfig, n: int) -> float:
    def birth() -> Birth:
        return Birth(agent="bench", site="plant-1", epoch=box.epoch, boot="b", ts=T0, version="bench",
                     config_hash="-", targets=[])

    watcher = MqttClient(cfg.broker, client_id="bench-watcher")
    online = asyncio.Event()
    watcher.subscribe(COLLECTOR_STATE_TOPIC, lambda _t, p: online.set() if p else None)
    await watcher.start()
    await asyncio.wait_for(online.wait(), 30)  # the collector stand-in is up and subscribed
    await watcher.stop()
    forwarder = Forwarder(cfg, box, birth, "b", lambda: time.time_ns() // 1_000_000)
    start = time.perf_counter()
    task = asyncio.create_task(forwarder.run())
    while box.stats().depth > 0:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - start
    await forwarder.stop()
    await task
    return n / elapsed


def event_bytes(box: Outbox) -> Iterator[bytes]:
    """Each stored event as the JSON object it is inside a batch, read in chunks (never all at once)."""
    after = 0
    while rows := box.pending(after, 10_000):
        for r in rows:
            yield f'{{"seq":{r.seq},"ts":{r.ts},"type":"{r.type}","body":{r.body}}}'.encode()
        after = rows[-1].seq


def raw_paho(port: int, payloads: Iterator[bytes], n: int, window: int = 20) -> tuple[float, float]:
    """Returns (messages/s, mean payload bytes)."""
    slots = threading.Semaphore(window)
    done = threading.Event()
    acked = 0

    def on_publish(client: paho.Client, userdata: object, mid: int, reason: object, props: object) -> None:
        nonlocal acked
        acked += 1
        slots.release()
        if acked == n:
            done.set()

    connected = threading.Event()
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-raw")
    client.on_connect = lambda *_: connected.set()
    client.on_publish = on_publish
    client.max_inflight_messages_set(window)
    client.connect("127.0.0.1", port)
    client.loop_start()
    connected.wait(10)
    size = 0
    start = time.perf_counter()
    for payload in payloads:
        slots.acquire()
        size += len(payload)
        client.publish("bench/raw", payload, qos=1)
    done.wait()
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return n / elapsed, size / n


async def run_acker(port: int) -> None:
    acker = Acker("127.0.0.1", port, client_id="bench-acker", keep_bodies=False)
    await acker.start()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--acker", type=int, help=argparse.SUPPRESS)  # internal: run the collector stand-in
    args = parser.parse_args()
    if args.acker:
        asyncio.run(run_acker(args.acker))
        return
    n = args.events
    with Mosquitto() as broker, tempfile.TemporaryDirectory(prefix="lw-bench-") as tmp:
        directory = Path(tmp)
        cfg = config(broker.port)
        print(f"outbox drain bench: {n:,} metrics events, mosquitto on {broker.port}, "
              f"batch {cfg.outbox.batch_max_events}, window {cfg.outbox.window}")
        full, normal = single_appends(directory, "FULL"), single_appends(directory, "NORMAL")
        print(f"single-event appends   FULL {full:>10,.0f} events/s   NORMAL {normal:>10,.0f} events/s")
        box = Outbox(directory / "outbox.db", cfg.outbox)
        print(f"fill (1000/txn, FULL)  {fill(box, n):>10,.0f} events/s")
        if box.stats().depth != n:
            raise SystemExit(f"the outbox holds {box.stats().depth} events, not {n}: check its limits")
        disk = sum(p.stat().st_size for p in directory.glob("outbox.db*"))
        print(f"outbox size            {disk / n:>10,.0f} bytes/event on disk")
        raw, size = raw_paho(broker.port, event_bytes(box), n)
        acker = subprocess.Popen([sys.executable, __file__, "--acker", str(broker.port)], env={**os.environ})
        try:
            rate = asyncio.run(drain(box, cfg, n))
        finally:
            acker.kill()
            acker.wait()
        print(f"drain via forwarder    {rate:>10,.0f} events/s  (acked by the collector, rows deleted)")
        print(f"raw paho QoS1 window20 {raw:>10,.0f} events/s  (one message per event, {size:,.0f} B each;"
              " PUBACK only)")


if __name__ == "__main__":
    main()
