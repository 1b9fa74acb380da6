"""Ticket latency: from an outage at the plant to the vendor's ticket system receiving the ticket.

    .venv/bin/python bench/ticket_latency.py [--outages 50] [--interval 0.5] [--seed 1]

Starts its own Mosquitto; writes a collector config with one contract whose ticket sink is a signed webhook
to a local fake vendor (tests/fakes/webhook.py, a threaded HTTP server that stamps each request on arrival);
runs the collector service in this process as `linewarden collector run` builds it (default ticket poll
period and retry policy) on a fresh SQLite store; runs `linewarden agent run` in its own process, probing a
simulated MES (`GET /health`) every `--interval` with fail_threshold 3 and recover_threshold 2.

Then, `--outages` times in a row: at a random point of the agent's poll cycle (waiting a uniform 0..interval
first, `--seed`; without it every outage would start just after a probe round, the worst phase), the MES
stops listening (the outage is injected), the bench waits for the
vendor to receive `ticket.created` for a new incident, restores the MES and waits until the collector has the
incident resolved and every ticket step sent. The figure is injected → ticket request received by the vendor;
p50/p99/max are printed beside the floor fail_threshold × interval (the agent cannot confirm an outage sooner
than its third failing probe; the first one comes up to one interval after the outage starts).

Each latency is split into stages from what the collector stored:
- detect: injected → the agent emits incident_opened (event ts);
- forward: agent → collector stored the event (received_at): outbox, forwarder, broker, ingest;
- route: stored → ticket route and dispatch row written (routed_at);
- send: routed → the vendor received the request (dispatcher wake-up, sink, HTTP).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from collector.service import CollectorService  # noqa: E402
from collector.store.sqlite import SqliteStore  # noqa: E402
from linewarden.book import load_book  # noqa: E402
from linewarden.config.collector import CollectorConfig  # noqa: E402
from linewarden.config.load import load  # noqa: E402
from simulators.broker import Mosquitto  # noqa: E402
from simulators.mes import MesServer  # noqa: E402
from tests.fakes.server import Reply, Request  # noqa: E402
from tests.fakes.webhook import FakeWebhookReceiver  # noqa: E402

FAIL_THRESHOLD = 3
SECRET = "bench-webhook-secret-0123456789abcdef"
SECRET_ENV = "LW_BENCH_WEBHOOK_SECRET"
TARGET = "mes-health"
STEP_TIMEOUT_S = 30.0
GOAL_MARGIN_S = 1.0


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class StampingVendor(FakeWebhookReceiver):
    """The fake webhook receiver, noting when each incident's `ticket.created` first arrived (wall ms)."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret)
        self.created_at: dict[str, int] = {}

    def handle(self, req: Request) -> Reply:
        arrived = wall_ms()
        reply = super().handle(req)
        if req.headers.get("X-Linewarden-Event") == "ticket.created":
            key = req.headers.get("Idempotency-Key") or ""
            with self.lock:
                self.created_at.setdefault(key, arrived)
        return reply

    def new_tickets(self, known: set[str]) -> set[str]:
        with self.lock:
            return set(self.created_at) - known


@dataclass(frozen=True)
class Cycle:
    injected: int
    emitted: int  # incident_opened event ts (agent)
    stored: int  # received_at at the collector
    routed: int
    received: int  # at the vendor

    @property
    def latency_ms(self) -> int:
        return self.received - self.injected


def write_configs(root: Path, broker_port: int, mes_url: str, vendor_url: str, interval_s: float) -> Path:
    (root / "contracts").mkdir()
    (root / "contracts" / "bench.toml").write_text(
        f"""
[contract]
id = "bench-mes"
vendor = "acme"
document_sha256 = "{"0" * 64}"
currency = "EUR"
fee_per_period = 1000
timezone = "UTC"

[scope]
assets = ["mes-app"]

[support]
tier = "premium"
[support.targets]
S1 = {{ response = "1h", resolution = "4h" }}

[ticketing]
kind = "webhook"
url = "{vendor_url}/hooks/linewarden"
secret = {{ env = "{SECRET_ENV}" }}
"""
    )
    (root / "collector.toml").write_text(
        f"""
contracts = ["contracts/*.toml"]
calendars = []

[collector]
id = "bench"
data_dir = "{root / "collector"}"

[broker]
host = "127.0.0.1"
port = {broker_port}
"""
    )
    (root / "agent.toml").write_text(
        f"""
[agent]
id = "bench-agent"
site = "bench"
data_dir = "{root / "agent"}"
heartbeat_interval = "5s"
metrics = false

[broker]
host = "127.0.0.1"
port = {broker_port}

[defaults]
interval = "{round(interval_s * 1000)}ms"
timeout = "{round(min(interval_s, 1.0) * 1000)}ms"
fail_threshold = {FAIL_THRESHOLD}
recover_threshold = 2

[flap]
max_changes = 100000   # one incident per outage, however many outages the bench injects

[[assets]]
id = "mes-app"
criticality = "critical"

[[targets]]
id = "{TARGET}"
type = "http"
asset = "mes-app"
url = "{mes_url}/health"
json_path = "status"
condition = {{ equals = "ok" }}
"""
    )
    return root / "collector.toml"


def start_agent(root: Path) -> subprocess.Popen[bytes]:
    """`linewarden agent run` in its own process, as on a plant host; its log goes to agent.log."""
    with (root / "agent.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "linewarden.cli", "agent", "run", "--config", str(root / "agent.toml")],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


async def wait_for(predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out after {STEP_TIMEOUT_S:.0f} s waiting for {what}")
        await asyncio.sleep(0.005)


def incident_opened(store: SqliteStore, incident: str) -> tuple[int, int]:
    with store.reader() as sql:
        rows = sql.query(
            "SELECT ts, received_at FROM events WHERE type = 'incident_opened' AND body LIKE ? ORDER BY seq LIMIT 1",
            (f'%"{incident}"%',),
        )
    return int(rows[0]["ts"]), int(rows[0]["received_at"])


def routed_at(store: SqliteStore, incident: str) -> int:
    with store.reader() as sql:
        rows = sql.query("SELECT routed_at FROM ticket_routes WHERE incident_id = ?", (incident,))
    return int(rows[0]["routed_at"])


def settled(store: SqliteStore, incident: str) -> bool:
    """The incident is resolved at the collector and no ticket step is waiting."""
    with store.reader() as sql:
        resolved = sql.query("SELECT 1 AS x FROM incidents WHERE id = ? AND resolved_at IS NOT NULL", (incident,))
        waiting = sql.query("SELECT 1 AS x FROM ticket_dispatches WHERE state IN ('pending', 'in_flight') LIMIT 1")
    return bool(resolved) and not waiting


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def summary(name: str, values_ms: list[int]) -> str:
    s = [v / 1000 for v in values_ms]
    return (
        f"{name:<28} p50 {pct(s, 0.5):6.3f} s   p99 {pct(s, 0.99):6.3f} s   max {max(s):6.3f} s"
        f"   mean {statistics.fmean(s):6.3f} s"
    )


async def run(outages: int, interval_s: float, rng: random.Random) -> list[Cycle]:
    os.environ[SECRET_ENV] = SECRET
    vendor = StampingVendor(SECRET).start()
    with tempfile.TemporaryDirectory(prefix="lw-ticket-latency-") as tmp, Mosquitto() as broker:
        root = Path(tmp)
        async with MesServer("mes") as mes:
            config_path = write_configs(root, broker.port, mes.url, vendor.url, interval_s)
            config = load(CollectorConfig, config_path)
            (root / "collector").mkdir()
            store = SqliteStore(root / "collector" / "collector.db")
            store.migrate()
            collector = CollectorService(config, store, book=load_book(config, config_path))
            await collector.start()
            agent = start_agent(root)
            try:
                await wait_for(lambda: store.state_changes(0, wall_ms() + 1), "the agent's first state change")
                return await cycles(outages, interval_s, rng, mes, vendor, store)
            finally:
                agent.terminate()
                agent.wait(15)
                await collector.stop()
                store.close()
                vendor.stop()


async def cycles(
    outages: int, interval_s: float, rng: random.Random, mes: MesServer, vendor: StampingVendor, store: SqliteStore
) -> list[Cycle]:
    done: list[Cycle] = []
    for n in range(outages):
        before = set(vendor.created_at)
        await asyncio.sleep(rng.uniform(0, interval_s))
        injected = wall_ms()
        await mes.down(None)
        await wait_for(partial(vendor.new_tickets, before), f"the ticket of outage {n + 1}")
        (incident,) = vendor.new_tickets(before)
        await mes.up()
        await wait_for(partial(settled, store, incident), f"recovery from outage {n + 1}")
        emitted, stored = incident_opened(store, incident)
        done.append(Cycle(injected, emitted, stored, routed_at(store, incident), vendor.created_at[incident]))
        print(f"outage {n + 1:3d}: {done[-1].latency_ms / 1000:.3f} s", flush=True)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outages", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.5, help="agent poll interval, seconds")
    parser.add_argument("--seed", type=int, default=1, help="seed of the outages' phase in the poll cycle")
    args = parser.parse_args()
    started = time.monotonic()
    done = asyncio.run(run(args.outages, args.interval, random.Random(args.seed)))
    floor = FAIL_THRESHOLD * args.interval
    latencies = [c.latency_ms for c in done]
    p99 = pct([v / 1000 for v in latencies], 0.99)
    print()
    print(f"{len(done)} outages, interval {args.interval} s, fail_threshold {FAIL_THRESHOLD}")
    print(summary("injected -> vendor received", latencies))
    print(f"{'floor fail_threshold x interval':<28} {floor:.3f} s   goal: p99 <= floor + {GOAL_MARGIN_S:.0f} s")
    print("stages:")
    print(summary("  detect (agent emits)", [c.emitted - c.injected for c in done]))
    print(summary("  forward (collector stored)", [c.stored - c.emitted for c in done]))
    print(summary("  route (ticket requested)", [c.routed - c.stored for c in done]))
    print(summary("  send (vendor received)", [c.received - c.routed for c in done]))
    verdict = "met" if p99 <= floor + GOAL_MARGIN_S else "NOT met"
    took = time.monotonic() - started
    print(f"goal {verdict}: p99 {p99:.3f} s against {floor + GOAL_MARGIN_S:.3f} s; run took {took:.0f} s")


if __name__ == "__main__":
    main()
