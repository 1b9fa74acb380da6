"""SSE fan-out: does serving live updates to open consoles slow ingest down?

    .venv/bin/python bench/console_fanout.py [--consoles 50] [--agents 20] [--events 100000]

Starts Mosquitto and a CollectorService with its API and console on a fresh SQLite store, in this process,
and measures this process's CPU time while bench/ingest_rate.py's publisher (another process) sends
`--events` events and waits for every ack: once with no console open, once with `--consoles` consoles open
(a third process: each logged in, reading /console/events, and fetching the overview again at most every
5 s after a change, as console.js does). Prints CPU seconds and wall time of both runs and the increase;
the goal is at most +10 % CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from collector.console.users import add_user  # noqa: E402
from collector.service import CollectorService  # noqa: E402
from collector.store.sqlite import SqliteStore  # noqa: E402
from linewarden.config.collector import CollectorConfig  # noqa: E402
from simulators.broker import Mosquitto  # noqa: E402

PASSWORD = "bench console password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------ the consoles (child process)


async def logged_in(url: str) -> httpx.AsyncClient:
    """A console's client with a full session (one at a time: each login hashes the password with argon2id)."""
    client = httpx.AsyncClient(base_url=url, timeout=30)
    pre = (await client.get("/login")).text.split('name="pre" value="', 1)[1].split('"', 1)[0]
    done = await client.post("/login", data={"pre": pre, "username": "bench", "password": PASSWORD})
    if done.status_code != 303 or "/login" in done.headers.get("location", "") or "/mfa" in done.headers["location"]:
        raise SystemExit(f"the bench user did not log in: {done.status_code} {done.headers.get('location')}")
    return client


async def one_console(client: httpx.AsyncClient, opened: asyncio.Event, counts: list[int],
                      stop: asyncio.Event) -> None:
    try:
        last_fetch, version = 0.0, None
        async with client.stream("GET", "/events", timeout=None) as stream:
            if stream.status_code != 200 or not stream.headers["content-type"].startswith("text/event-stream"):
                raise SystemExit(f"/events answered {stream.status_code}, not a live stream")
            counts[0] += 1
            if counts[0] == counts[1]:
                opened.set()
            async for line in stream.aiter_lines():
                if stop.is_set():
                    return
                if not line.startswith("data: "):
                    continue
                counts[2] += 1
                v = json.loads(line[6:])["v"]
                if version is not None and v != version and time.monotonic() - last_fetch >= 5:
                    last_fetch = time.monotonic()
                    await client.get("/")
                    counts[3] += 1
                version = v
    finally:
        await client.aclose()


async def consoles(url: str, n: int) -> None:
    opened, stop = asyncio.Event(), asyncio.Event()
    counts = [0, n, 0, 0]  # open, wanted, messages, page fetches
    clients = [await logged_in(url) for _ in range(n)]
    tasks = [asyncio.create_task(one_console(c, opened, counts, stop)) for c in clients]
    await asyncio.wait([asyncio.create_task(opened.wait()), *tasks], timeout=120,
                                 return_when=asyncio.FIRST_COMPLETED)
    if not opened.is_set():
        raise SystemExit(f"only {counts[0]} of {n} live streams opened")
    print("open", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(f"messages {counts[2]} fetches {counts[3]}", flush=True)


# ------------------------------------------------------------ the paced agent (child process)


async def paced_agent(port: int, changes: int, every_s: float) -> None:
    """One agent with 20 assets sending one state change every `every_s` (each awaited to its PUBACK)."""
    from linewarden.config.base import BrokerConfig
    from linewarden.domain import Criticality, ProbeKind, State
    from linewarden.mqtt import MqttClient
    from linewarden.wire import (
        Birth,
        EventBatch,
        StateChangeBody,
        StateChangeEvent,
        TargetInfo,
        birth_topic,
        build,
        encode,
        events_topic,
    )

    now = int(time.time() * 1000)
    targets = [TargetInfo(id=f"t{i}", kind=ProbeKind.MODBUS, asset=f"asset-{i}", criticality=Criticality.HIGH)
               for i in range(20)]
    birth = Birth(agent="paced", site="p1", epoch="e1", boot="b1", ts=now, version="0.1.0", config_hash="-",
                  targets=targets)
    client = MqttClient(BrokerConfig(host="127.0.0.1", port=port), client_id="fanout-paced")
    connected = asyncio.Event()
    client.on_connect = connected.set
    await client.start()
    try:
        await asyncio.wait_for(connected.wait(), 10)
        await client.publish(birth_topic("p1", "paced"), encode(birth), qos=1)
        print("start", flush=True)
        for n in range(changes):
            at = int(time.time() * 1000)
            down = n // 20 % 2 == 0
            body = build(StateChangeBody, {
                "target": f"t{n % 20}", "asset": f"asset-{n % 20}", "from": State.UP if down else State.DOWN,
                "to": State.DOWN if down else State.UP, "reason": "paced bench", "at": at})
            batch = EventBatch(agent="paced", site="p1", epoch="e1", boot="b1",
                               events=[StateChangeEvent(seq=n + 1, ts=at, body=body)])
            await client.publish(events_topic("p1", "paced"), encode(batch), qos=1)
            await asyncio.sleep(every_s)
        print("done ", flush=True)
    finally:
        await client.stop()


# ------------------------------------------------------------ the collector (this process)


async def run(n_consoles: int, args: argparse.Namespace, paced: bool = False) -> dict[str, float]:
    with Mosquitto() as broker, tempfile.TemporaryDirectory(prefix="lw-fanout-") as tmp:
        store = SqliteStore(Path(tmp) / "collector.db")
        store.migrate()
        add_user(store, "bench", PASSWORD, "plant_it", None, (), int(time.time() * 1000), "bench", "bench")
        port = free_port()
        config = CollectorConfig.model_validate({"collector": {"data_dir": tmp}, "broker": {"port": broker.port},
                                                 "api": {"port": port}})
        service = CollectorService(config, store, serve_api=True)
        await service.start()
        viewers = None
        note = ""
        try:
            if n_consoles:
                viewers = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--consoles-of", f"http://127.0.0.1:{port}/console",
                    "--consoles", str(n_consoles), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
                assert viewers.stdout is not None
                assert (await viewers.stdout.readline()).startswith(b"open")
            command = ([__file__, "--paced-agent", str(broker.port), "--paced", str(args.paced),
                        "--paced-every", str(args.paced_every)] if paced else
                       [str(REPO / "bench" / "ingest_rate.py"), "--publisher", str(broker.port), "--agents",
                        str(args.agents), "--events", str(args.events), "--batch", "100", "--window", "10"])
            publisher = await asyncio.create_subprocess_exec(sys.executable, *command, stdout=asyncio.subprocess.PIPE)
            assert publisher.stdout is not None
            cpu0 = t0 = 0.0
            result: dict[str, float] = {}
            while line := (await publisher.stdout.readline()).decode():
                if line.startswith("start"):
                    cpu0, t0 = time.process_time(), time.perf_counter()
                elif line.startswith("done "):
                    result = {"cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - t0}
            await publisher.wait()
            if viewers is not None:
                assert viewers.stdin is not None and viewers.stdout is not None
                viewers.stdin.write(b"\n")
                await viewers.stdin.drain()
                note = (await viewers.stdout.readline()).decode().strip()
                if not note.startswith("messages ") or int(note.split()[1]) < n_consoles:
                    raise SystemExit(f"the consoles got too few live messages to measure a fan-out: {note!r}")
                await viewers.wait()
        finally:
            if viewers is not None and viewers.returncode is None:
                viewers.kill()
            await service.stop()
            store.close()
        if not result:
            raise SystemExit("the publisher failed")
        print(f"  {n_consoles:>3} consoles open: collector {result['cpu_s']:.2f} CPU s, {result['wall_s']:.1f} s"
              + (f" ({note})" if note else ""), flush=True)
        return result


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--consoles", type=int, default=50)
    p.add_argument("--agents", type=int, default=20)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--paced", type=int, default=60, help="state changes of the paced run (0: no paced run)")
    p.add_argument("--paced-every", type=float, default=0.25, help="seconds between the paced run's changes")
    p.add_argument("--consoles-of", help=argparse.SUPPRESS)  # internal: be the consoles
    p.add_argument("--paced-agent", type=int, help=argparse.SUPPRESS)  # internal: be the paced agent
    args = p.parse_args()
    if args.consoles_of:
        asyncio.run(consoles(args.consoles_of, args.consoles))
        return
    if args.paced_agent:
        asyncio.run(paced_agent(args.paced_agent, args.paced, args.paced_every))
        return
    print(f"SSE fan-out bench: {args.events:,} events from {args.agents} agents")
    base = asyncio.run(run(0, args))
    loaded = asyncio.run(run(args.consoles, args))
    more = (loaded["cpu_s"] / base["cpu_s"] - 1) * 100
    print(f"collector CPU with {args.consoles} consoles: {more:+.1f} % (goal <= +10 %: "
          f"{'met' if more <= 10 else 'NOT met'}); wall {loaded['wall_s'] / base['wall_s'] * 100 - 100:+.1f} %")
    if args.paced:
        print(f"paced: one agent, {args.paced} state changes one every {args.paced_every} s (the watcher is not "
              "starved: every change reaches every console)")
        quiet = asyncio.run(run(0, args, paced=True))
        busy = asyncio.run(run(args.consoles, args, paced=True))
        extra = busy["cpu_s"] - quiet["cpu_s"]
        print(f"collector CPU for {args.consoles} consoles: {extra * 1000 / args.paced:+.1f} ms per change, "
              f"{extra / busy['wall_s'] * 100:+.1f} % of one core")


if __name__ == "__main__":
    main()
