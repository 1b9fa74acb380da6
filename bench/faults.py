"""Fault matrix: the whole system with devices going down and up, one fault at a time; nothing lost or doubled?

    .venv/bin/python bench/faults.py [--fault NAME ...] [--minutes 2 | --quick] [--keep]

Each fault runs on a fresh system, every part a process of its own except the simulators and the vendor:
- Mosquitto with the packaged config (packaging/mosquitto/linewarden.conf: `persistence true`, its queue and
  in-flight limits; only the TLS listener and the password file are replaced by an anonymous loopback port);
- two agents (`linewarden agent run`), each polling a simulated MES (`GET /health`, the one that goes down
  and up) and a simulated Modbus PLC every 250 ms, heartbeat 1 s, flap damping off (one incident per outage);
- the collector (`linewarden collector run`) on SQLite, or on PostgreSQL for `pg-restart`, with one contract
  whose sink is a signed webhook;
- in this process: the MES and Modbus simulators, the vendor's webhook receiver (tests/fakes/webhook.py,
  recording every request), and a supervisor that restarts an agent or the collector that exits by itself,
  as systemd's `Restart=always` would (counted as a crash).

Agent B's MES goes down and up all the time; the fault's own routine drives agent A's MES and injects the
fault (see FAULTS). With `--minutes M` the routine repeats until M minutes have passed (at least once);
`--quick` runs it once. Then the bench waits (at most SETTLE_S) until both outboxes are acked, every incident
is resolved and ticketed and no ticket request is pending, and counts from the agents' outboxes, the
collector's store and the webhook's request log:
- events: produced (seqs the agents assigned), stored (rows at the collector), declared lost (seqs a `gap`
  event says were dropped), held (not stored yet, still in the agent's outbox), lost (none of these: must
  be 0), duplicated (the same incident or state-change body stored twice);
- outages injected / incidents opened / missed (outages without an incident) / extra (more incidents than
  outages on a target);
- tickets expected (one per vendor incident) / received (distinct tickets at the vendor) / duplicate
  `ticket.created` requests (retries the vendor de-duplicated by Idempotency-Key) / duplicate tickets.
Goal per fault: 0 lost, 0 missed, 0 duplicate tickets, settled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simulators.broker import Mosquitto  # noqa: E402
from simulators.mes import MesServer  # noqa: E402
from simulators.modbus_plc import ModbusPlc  # noqa: E402
from tests.fakes.webhook import FakeWebhookReceiver  # noqa: E402
from tests.tcp_proxy import ThreadedTcpProxy  # noqa: E402

LINEWARDEN = Path(sys.executable).parent / "linewarden"
PACKAGED_BROKER_CONF = REPO / "packaging" / "mosquitto" / "linewarden.conf"
POSTGRES = os.environ.get("LINEWARDEN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SITE = "plant-f"
CONTRACT = "faults-2026"
SECRET = "0123456789abcdef0123456789abcdef"
SECRET_ENV = "LW_FAULTS_WEBHOOK_SECRET"
CLOCK_OFFSET_FILE_ENV = "LINEWARDEN_CLOCK_OFFSET_FILE"  # agent/clock.py
HOUR_MS = 3_600_000
DOWN_S = 3.0  # one outage: the MES refuses for this long ...
UP_S = 3.0  # ... then answers for this long before the next
START_S = 60.0
SETTLE_S = 120.0
RESTART_AFTER_S = 1.0  # the supervisor's RestartSec
SMALL_DISK = "24m"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting {timeout:g} s for {what}")
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------- parts


class Broker(Mosquitto):
    """Mosquitto with the packaged config, on a loopback port without TLS or passwords; `kill()` is kill -9."""

    def __init__(self) -> None:
        super().__init__()
        self.store_dir = self.conf.parent / "persist"
        self.store_dir.mkdir()
        self.conf.write_text(packaged_conf(self.host, self.port, self.store_dir, self.log))

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.proc = None


def packaged_conf(host: str, port: int, store_dir: Path, log: Path) -> str:
    # TLS, identities and the ACL belong to the packaged listeners; the bench's one loopback listener is open.
    replaced = ("per_listener_settings", "listener", "cafile", "certfile", "keyfile", "require_certificate",
                "allow_anonymous", "password_file", "acl_file", "use_username_as_clientid", "use_identity_as_username")
    kept = [line for line in PACKAGED_BROKER_CONF.read_text().splitlines()
            if line.strip() and not line.startswith("#") and line.split()[0] not in replaced]
    if "persistence true" not in kept:
        raise SystemExit(f"{PACKAGED_BROKER_CONF} no longer says `persistence true`")
    return "\n".join([f"listener {port} {host}", "allow_anonymous true", f"persistence_location {store_dir}/",
                      *kept, f"log_dest file {log}", "log_type error", "log_type warning", "log_type notice", ""])


class Service:
    """A child process under a supervisor: `kill9()` and `stop()` are on purpose; an exit by itself is a crash,
    and `supervise()` starts it again after RESTART_AFTER_S."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.crashes = 0
        self.kills = 0
        self.held = False  # stopped on purpose: not restarted

    def start(self) -> None:
        self.held = False
        with self.log.open("a") as out:
            out.write(f"---- start {time.strftime('%H:%M:%S')}\n")
            out.flush()
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def kill9(self) -> None:
        self.held = True
        self.kills += 1
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        self.held = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    async def supervise(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            if not self.held and self.proc is not None and self.proc.poll() is not None:
                self.crashes += 1
                with self.log.open("a") as out:
                    out.write(f"---- exited by itself with {self.proc.returncode}; restarting\n")
                await asyncio.sleep(RESTART_AFTER_S)
                if not self.held:
                    self.start()

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


class SmallDisk:
    """A tmpfs of SMALL_DISK mounted for one data directory; `fill()` takes every free byte, `free()` gives
    them back. Needs root (mount); `available()` says why not."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler.bin"
        self.mounted = False

    @staticmethod
    def available() -> str | None:
        """None if a tmpfs can be mounted here, else the reason."""
        probe = Path(tempfile.mkdtemp(prefix="lw-faults-probe-"))
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                return f"cannot mount a small tmpfs (needs root): {done.stderr.strip()}"
            subprocess.run(["umount", str(probe)], check=True)
            return None
        except OSError as exc:
            return f"cannot mount a small tmpfs: {exc}"
        finally:
            shutil.rmtree(probe, ignore_errors=True)

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK}", "tmpfs", str(self.path)], check=True)
        self.mounted = True

    def fill(self) -> int:
        """Write until the disk is full; returns the bytes taken."""
        taken = 0
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (1 << 20, 1 << 14, 1 << 10, 64, 1):
                with contextlib.suppress(OSError):
                    while True:
                        taken += os.write(fd, b"\0" * size)
        finally:
            os.close(fd)
        return taken

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False)
            self.mounted = False


# ---------------------------------------------------------------- configs


def agent_toml(agent_id: str, data_dir: Path, broker_port: int, mes: MesServer, plc: ModbusPlc) -> str:
    return f"""
[agent]
id = "{agent_id}"
site = "{SITE}"
data_dir = "{data_dir}"
heartbeat_interval = "1s"

[broker]
host = "127.0.0.1"
port = {broker_port}
keepalive = "5s"

[outbox]
ack_timeout = "3s"

[defaults]
interval = "250ms"
timeout = "200ms"
fail_threshold = 3
recover_threshold = 2

[flap]
max_changes = 100000   # one incident per outage

[[assets]]
id = "{mes.name}"
criticality = "critical"

[[assets]]
id = "{plc.name}"
criticality = "high"

[[targets]]
id = "{mes.name}-health"
type = "http"
asset = "{mes.name}"
url = "{mes.url}/health"
json_path = "status"
condition = {{ equals = "ok" }}

[[targets]]
id = "{plc.name}-modbus"
type = "modbus"
asset = "{plc.name}"
host = "127.0.0.1"
port = {plc.port}
unit = 1

[[targets.points]]
name = "status"
address = 1
condition = {{ equals = 1, fail_state = "DOWN" }}
"""


def collector_toml(data_dir: Path, broker_port: int, database_url: str | None, collector_id: str = "faults-collector",
                   share_group: str | None = None) -> str:
    db = f'database_url = "{database_url}"\n' if database_url else ""
    ingest = f'[ingest]\nshare_group = "{share_group}"\n' if share_group else ""
    return f"""
contracts = ["contracts/*.toml"]
{ingest}
[collector]
id = "{collector_id}"
data_dir = "{data_dir}"
{db}timezone = "Europe/Berlin"

[broker]
host = "127.0.0.1"
port = {broker_port}
keepalive = "5s"

[liveness]
missed_heartbeats = 3

[api]
host = "127.0.0.1"
port = 0
"""


def contract_toml(assets: Sequence[str], hook_url: str) -> str:
    return f"""
[contract]
id = "{CONTRACT}"
vendor = "acme"
document_sha256 = "{'0' * 64}"
currency = "EUR"
fee_per_period = 1000.00
timezone = "Europe/Berlin"

[scope]
assets = {json.dumps(list(assets))}

[support]
tier = "premium"
coverage = "24x7"
[support.targets]
S1 = {{ response = "1h", resolution = "4h" }}
S2 = {{ response = "4h", resolution = "8h" }}

[ticketing]
kind = "webhook"
url = "{hook_url}/hooks/linewarden"
secret = {{ env = "{SECRET_ENV}" }}
"""


# ---------------------------------------------------------------- reading the results


Query = Callable[[str, Sequence[Any]], list[dict[str, Any]]]


@contextlib.contextmanager
def collector_reader(db: Path | None, pg_schema: str | None) -> Iterator[Query]:
    """Read-only SQL on the collector's store (SQLite file, or the PostgreSQL schema), `?` placeholders."""
    if pg_schema is not None:
        with _postgres_reader(pg_schema) as query:
            yield query
        return
    assert db is not None
    lite_conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    lite_conn.row_factory = sqlite3.Row
    try:
        def lite(sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
            return [dict(r) for r in lite_conn.execute(sql, tuple(params)).fetchall()]

        yield lite
    finally:
        lite_conn.close()


@contextlib.contextmanager
def _postgres_reader(schema: str) -> Iterator[Query]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(POSTGRES, autocommit=True, row_factory=dict_row) as conn:
        conn.execute(f"SET search_path TO {schema}")
        conn.execute("SET lock_timeout = '2s'")  # a read behind a migration gives up; the caller polls again

        def pg(sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
            return list(conn.execute(sql.replace("?", "%s"), tuple(params)).fetchall())

        yield pg


@dataclass(frozen=True)
class OutboxState:
    epoch: str
    produced: int  # seqs assigned: next_seq - 1
    acked: int


def outbox_seqs(path: Path) -> set[int]:
    """Seqs still in the agent's outbox (not yet acknowledged, so not lost)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return {int(r[0]) for r in conn.execute("SELECT seq FROM events")}
        finally:
            conn.close()
    except sqlite3.Error:
        return set()


def outbox_state(path: Path) -> OutboxState | None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        finally:
            conn.close()
        return OutboxState(meta["epoch"], int(meta["next_seq"]) - 1, int(meta["last_ack_seq"]))
    except (sqlite3.Error, KeyError, ValueError):
        return None


@dataclass
class Figures:
    fault: str
    produced: int = 0
    stored: int = 0
    declared_lost: int = 0
    held: int = 0  # not at the collector but still in the agent's outbox, to be sent again
    lost: int = 0  # neither stored, nor declared in a gap, nor still held by the agent
    duplicated: int = 0
    outages: int = 0
    incidents: int = 0
    missed: int = 0
    extra_incidents: int = 0
    tickets_expected: int = 0
    tickets_received: int = 0
    duplicate_requests: int = 0
    duplicate_tickets: int = 0
    dated_ahead: int = 0  # events dated more than 30 min after they arrived (the clock step took effect)
    unresolved: int = 0
    unacked: int = 0
    dead_letters: int = 0
    crashes: int = 0
    settled: bool = False
    seconds: float = 0.0
    settle_s: float = 0.0  # from the last injected change until settled
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.skipped is None and self.settled and self.lost == 0 and self.missed == 0 \
            and self.duplicate_tickets == 0 and self.extra_incidents == 0 and self.duplicated == 0


# ---------------------------------------------------------------- the system


@dataclass
class Side:
    """One agent with its MES and PLC."""

    name: str
    mes: MesServer
    plc: ModbusPlc
    service: Service
    data_dir: Path
    outages: list[tuple[int, int]] = field(default_factory=list)

    @property
    def mes_target(self) -> str:
        return f"{self.mes.name}-health"

    def outbox(self) -> OutboxState | None:
        return outbox_state(self.data_dir / "outbox.db")

    async def outage(self, seconds: float = DOWN_S) -> None:
        """Take the MES down for `seconds` (the scenario's length, not a wait), then up again."""
        await self.down()
        await asyncio.sleep(seconds)
        await self.up()

    async def down(self) -> None:
        await self.mes.down(None)
        self.outages.append((now_ms(), 0))

    async def up(self) -> None:
        await self.mes.up()
        start, _ = self.outages[-1]
        self.outages[-1] = (start, now_ms())


class System:
    """Everything of one fault run, in `directory`; an async context manager that stops it all."""

    def __init__(self, directory: Path, *, collector: Callable[[Path], list[str]], postgres: bool = False,
                 agent_disk: bool = False, collector_disk: bool = False, clock_file: bool = False,
                 collectors: int = 1) -> None:
        """`collectors` > 1: that many collector processes on PostgreSQL sharing the ingest (docs/scale-out.md)."""
        if collectors > 1 and not postgres:
            raise ValueError("several collectors share one PostgreSQL")
        self.dir = directory
        self.collector_cmd = collector
        self.broker = Broker()
        self.hook = FakeWebhookReceiver(SECRET)
        self.pg_schema = f"lw_faults_{os.getpid()}_{time.monotonic_ns() % 10**9}" if postgres else None
        # On a loop of its own: the bench reads the store synchronously on this one, and a read waiting on a lock
        # the collector holds must not stop the collector's own COMMIT from passing through the proxy.
        self.proxy: ThreadedTcpProxy | None = ThreadedTcpProxy(("127.0.0.1", 5432)) if postgres else None
        self.collector_dir = directory / "collector"
        self.agent_disk = SmallDisk(directory / "agent-a") if agent_disk else None
        self.collector_disk = SmallDisk(self.collector_dir) if collector_disk else None
        self.clock_file = directory / "clock-offset-ms" if clock_file else None
        self.sides: list[Side] = []
        self.collector_count = collectors
        self.collectors: list[Service] = []
        self._stack = contextlib.AsyncExitStack()
        self._supervisors: list[asyncio.Task[None]] = []

    @property
    def collector(self) -> Service | None:
        return self.collectors[0] if self.collectors else None

    @property
    def services(self) -> list[Service]:
        return [s.service for s in self.sides] + self.collectors

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": str(REPO), SECRET_ENV: SECRET, **extra}
        env.pop("LINEWARDEN_CLOCK_OFFSET_MS", None)
        return env

    async def __aenter__(self) -> System:
        try:
            await self._start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._supervisors:
            task.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)
        for service in self.services:
            service.stop()
        await self._stack.aclose()
        self.hook.stop()
        self.broker.cleanup()
        for disk in (self.agent_disk, self.collector_disk):
            if disk is not None:
                disk.unmount()
        if self.pg_schema is not None:
            with contextlib.suppress(Exception):
                import psycopg

                with psycopg.connect(POSTGRES, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA IF EXISTS {self.pg_schema} CASCADE")

    async def _start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hook.start()  # first: stopping a receiver that never started would wait forever
        self.broker.start()
        for disk in (self.agent_disk, self.collector_disk):
            if disk is not None:
                disk.mount()
        self.collector_dir.mkdir(exist_ok=True)
        database_url = None
        if self.proxy is not None and self.pg_schema is not None:
            import psycopg

            with psycopg.connect(POSTGRES, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {self.pg_schema}")
            self.proxy.start()
            self._stack.callback(self.proxy.close)
            database_url = (f"postgresql://postgres@127.0.0.1:{self.proxy.port}/test"
                            f"?options=-csearch_path%3D{self.pg_schema}")
        config_dir = self.dir / "config"
        (config_dir / "contracts").mkdir(parents=True)
        for name in ("a", "b"):
            mes = await self._stack.enter_async_context(MesServer(f"mes-{name}"))
            plc = await self._stack.enter_async_context(ModbusPlc(f"plc-{name}", heartbeat_period=0.5))
            data_dir = self.dir / f"agent-{name}"
            data_dir.mkdir(exist_ok=True)
            path = config_dir / f"agent-{name}.toml"
            path.write_text(agent_toml(f"agent-{name}", data_dir, self.broker.port, mes, plc))
            extra = {CLOCK_OFFSET_FILE_ENV: str(self.clock_file)} if self.clock_file and name == "a" else {}
            service = Service(f"agent-{name}", [str(LINEWARDEN), "agent", "run", "--config", str(path)],
                              self.env(**extra), self.dir / f"agent-{name}.log")
            self.sides.append(Side(f"agent-{name}", mes, plc, service, data_dir))
        assets = [s.mes.name for s in self.sides]
        (config_dir / "contracts" / "faults.toml").write_text(contract_toml(assets, self.hook.url))
        shared = self.collector_count > 1
        for n in range(1, self.collector_count + 1):
            name = "collector" if n == 1 else f"collector-{n}"
            data_dir = self.collector_dir if n == 1 else self.dir / name
            data_dir.mkdir(exist_ok=True)
            path = config_dir / f"{name}.toml"
            path.write_text(collector_toml(data_dir, self.broker.port, database_url, f"faults-{name}",
                                           "faults" if shared else None))
            self.collectors.append(Service(name, self.collector_cmd(path), self.env(), self.dir / f"{name}.log"))
        for n, collector in enumerate(self.collectors):
            collector.start()
            if n == 0:  # the first one creates the store; the others then find it migrated
                await wait_for(lambda: self.read(lambda q: q("SELECT 1 FROM counters", ())) is not None, START_S,
                               "the collector's store")
        for side in self.sides:
            side.service.start()
        self._supervisors = [asyncio.create_task(s.supervise()) for s in self.services]
        targets = 2 * len(self.sides)
        await wait_for(lambda: len(self.read(lambda q: q(
            "SELECT DISTINCT target FROM state_changes WHERE to_state = 'UP'", ())) or []) >= targets,
            START_S, "every target UP at the collector")
        if shared:
            await wait_for(lambda: all("MQTT connected" in c.tail(100_000) for c in self.collectors), START_S,
                           "every collector connected to the broker")

    # ------------------------------------------------------------ reading

    def read(self, fn: Callable[[Query], Any]) -> Any:
        """fn(query) on the collector's store; None while it cannot be read (not created yet, disk full …)."""
        db = None if self.pg_schema else self.collector_dir / "collector.db"
        if db is not None and not db.exists():
            return None
        try:
            with collector_reader(db, self.pg_schema) as query:
                return fn(query)
        except Exception:  # sqlite3 / psycopg errors while the store is being created or is unreachable
            return None

    def collector_has_down(self, side: Side) -> bool:
        """The collector stored a DOWN for each outage of `side` so far."""
        rows = self.read(lambda q: q("SELECT 1 FROM state_changes WHERE target = ? AND to_state = 'DOWN'",
                                     (side.mes_target,)))
        return bool(rows) and len(rows) >= len(side.outages)

    def settled(self) -> bool:
        for side in self.sides:
            state = side.outbox()
            if state is None or state.acked < state.produced:
                return False
        done = self.read(lambda q: (
            q("SELECT COUNT(*) AS n FROM incidents WHERE resolved_at IS NULL", ())[0]["n"],
            q("SELECT COUNT(*) AS n FROM ticket_dispatches WHERE state IN ('pending', 'in_flight')", ())[0]["n"],
            q("SELECT COUNT(*) AS n FROM incidents i WHERE asset IN (?, ?) AND NOT EXISTS "
              "(SELECT 1 FROM tickets t WHERE t.incident_id = i.id AND t.sink <> 'plant_it')",
              tuple(s.mes.name for s in self.sides))[0]["n"],
        ))
        return done is not None and done == (0, 0, 0)

    def figures(self, fault: str) -> Figures:
        fig = Figures(fault)
        mes_targets = {s.mes_target: s for s in self.sides}

        def collect(q: Query) -> bool:
            for side in self.sides:
                state = side.outbox()
                if state is None:
                    fig.notes.append(f"{side.name}: outbox unreadable")
                    continue
                fig.produced += state.produced
                fig.unacked += state.produced - state.acked
                epochs = q("SELECT DISTINCT epoch FROM events WHERE agent = ?", (side.name,))
                if len(epochs) > 1:
                    fig.notes.append(f"{side.name}: {len(epochs)} epochs at the collector")
                stored = {int(r["seq"]) for r in q("SELECT seq FROM events WHERE agent = ? AND epoch = ?",
                                                      (side.name, state.epoch))}
                fig.stored += len(stored)
                covered: set[int] = set()
                for row in q("SELECT body FROM events WHERE agent = ? AND epoch = ? AND type = 'gap'",
                             (side.name, state.epoch)):
                    body = json.loads(row["body"])
                    covered |= set(range(int(body["from_seq"]), int(body["to_seq"]) + 1))
                    fig.notes.append(f"{side.name}: gap {body['from_seq']}..{body['to_seq']}: {body['reason']}")
                fig.declared_lost += len(covered - stored)
                held = outbox_seqs(side.data_dir / "outbox.db") - stored - covered
                fig.held += len(held)
                fig.lost += len(set(range(1, state.produced + 1)) - stored - covered - held)
            ahead = q("SELECT COUNT(*) AS n FROM events WHERE ts > received_at + ?", (HOUR_MS // 2,))
            fig.dated_ahead = int(ahead[0]["n"])
            bodies = q("SELECT agent, type, body FROM events WHERE type IN "
                       "('incident_opened', 'incident_resolved', 'state_change')", ())
            seen = Counter((r["agent"], r["type"], r["body"]) for r in bodies)
            fig.duplicated = sum(n - 1 for n in seen.values())
            incidents = q("SELECT id, target, agent, resolved_at FROM incidents", ())
            per_target = Counter(i["target"] for i in incidents if i["target"] in mes_targets)
            other = [i for i in incidents if i["target"] not in mes_targets]
            if other:
                fig.notes.append(f"{len(other)} other incidents: "
                                 + ", ".join(sorted({f"{i['agent']}/{i['target']}" for i in other})))
            for target, side in mes_targets.items():
                outages = len(side.outages)
                fig.outages += outages
                fig.incidents += per_target[target]
                fig.missed += max(0, outages - per_target[target])
                fig.extra_incidents += max(0, per_target[target] - outages)
            fig.unresolved = sum(1 for i in incidents if i["resolved_at"] is None)
            fig.tickets_expected = sum(per_target.values())
            fig.dead_letters = int(q("SELECT COUNT(*) AS n FROM dead_letters", ())[0]["n"])
            ticket_rows = q("SELECT incident_id FROM tickets WHERE sink <> 'plant_it'", ())
            fig.duplicate_tickets = sum(n - 1 for n in Counter(t["incident_id"] for t in ticket_rows).values())
            return True

        if self.read(collect) is None:
            fig.notes.append("the collector's store could not be read")
        with self.hook.lock:
            fig.tickets_received = len(self.hook.tickets)
            created = Counter(r.headers.get("Idempotency-Key") for r in self.hook.requests
                              if r.headers.get("X-Linewarden-Event") == "ticket.created")
        fig.duplicate_requests = sum(n - 1 for n in created.values())
        fig.duplicate_tickets += max(0, fig.tickets_received - fig.tickets_expected)
        fig.crashes = sum(s.crashes for s in self.services)
        if fig.crashes:
            fig.notes.append("crashed and restarted: " + ", ".join(
                f"{s.name} ×{s.crashes}" for s in self.services if s.crashes))
        return fig


# ---------------------------------------------------------------- the faults


async def background_outages(side: Side, stop: asyncio.Event) -> None:
    """Agent B's MES goes down and up until told to stop (never stopped mid-outage)."""
    while not stop.is_set():
        await side.outage()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), UP_S)


async def down_seen(system: System, side: Side) -> None:
    """Start an outage on `side` and wait until the collector stored its DOWN: the fault lands mid-outage."""
    await side.down()
    await wait_for(lambda: system.collector_has_down(side), 30, f"{side.mes_target} DOWN at the collector")


async def agent_kill(system: System, pace: Pace) -> None:
    """kill -9 of agent A mid-outage; restarted while the MES is still down; then the MES comes back."""
    a = system.sides[0]
    await down_seen(system, a)
    a.service.kill9()
    await asyncio.sleep(2.0)  # the agent stays dead this long
    a.service.start()
    await asyncio.sleep(2.0)
    await a.up()
    await asyncio.sleep(UP_S)


async def broker_kill(system: System, pace: Pace) -> None:
    """kill -9 of Mosquitto mid-outage (its persistence file is as old as its last save); restarted after 3 s
    on the same port and directory; an outage begins and ends while it is down."""
    a = system.sides[0]
    await down_seen(system, a)
    system.broker.kill()
    await asyncio.sleep(1.0)
    await a.up()
    await asyncio.sleep(1.0)
    await a.outage(1.5)
    system.broker.start()
    await asyncio.sleep(UP_S)
    await a.outage()
    await asyncio.sleep(UP_S)


async def collector_kill(system: System, pace: Pace) -> None:
    """kill -9 of the collector for `pace.collector_down_s`; agent A's MES has outages meanwhile."""
    assert system.collector is not None
    a = system.sides[0]
    system.collector.kill9()
    until = time.monotonic() + pace.collector_down_s
    while time.monotonic() + DOWN_S + UP_S < until:
        await a.outage()
        await asyncio.sleep(UP_S)
    await asyncio.sleep(max(0.0, until - time.monotonic()))
    system.collector.start()
    await a.outage()
    await asyncio.sleep(UP_S)


async def collector_kill_in_ticket(system: System, pace: Pace) -> None:
    """kill -9 of the collector while its ticket.created request is at the vendor: the vendor creates the
    ticket but its answer is held until after the kill. The restarted collector asks again, with the same
    Idempotency-Key. (The held answer is never released: the vendor's thread gives up after 30 s.)"""
    assert system.collector is not None
    a = system.sides[0]

    def created() -> int:
        with system.hook.lock:
            return sum(1 for r in system.hook.requests if r.headers.get("X-Linewarden-Event") == "ticket.created")

    before = created()
    system.hook.stall_next(1)
    await a.down()
    await wait_for(lambda: created() > before, 30, "ticket.created at the vendor")
    system.collector.kill9()
    # The create at the vendor may be another incident's: A's outage must still last long enough for its
    # agent to confirm it, or the bench counts an outage nobody could have seen.
    await asyncio.sleep(DOWN_S)
    await a.up()
    await asyncio.sleep(1.0)
    system.collector.start()
    await asyncio.sleep(UP_S)


async def pg_restart(system: System, pace: Pace) -> None:
    """The PostgreSQL server restarts under the collector: every connection dropped, refused for 3 s."""
    assert system.proxy is not None
    a = system.sides[0]
    await down_seen(system, a)
    await asyncio.to_thread(system.proxy.stop)
    await asyncio.sleep(3.0)  # the server's restart time: the scenario, not a wait for a condition
    await asyncio.to_thread(system.proxy.start)
    await a.up()
    await asyncio.sleep(UP_S)
    await a.outage()
    await asyncio.sleep(UP_S)


async def disk_full(disk: SmallDisk | None, system: System, pace: Pace) -> None:
    """The data disk fills up mid-outage; an outage ends and another comes and goes while it is full; after
    `pace.disk_full_s` space is freed."""
    assert disk is not None
    a = system.sides[0]
    await down_seen(system, a)
    disk.fill()
    hold_until = time.monotonic() + pace.disk_full_s
    await asyncio.sleep(1.0)
    await a.up()
    await asyncio.sleep(UP_S)
    await a.outage()
    await asyncio.sleep(max(0.0, hold_until - time.monotonic()))
    disk.free()
    await asyncio.sleep(UP_S)
    await a.outage()
    await asyncio.sleep(UP_S)


async def agent_disk_full(system: System, pace: Pace) -> None:
    await disk_full(system.agent_disk, system, pace)


async def collector_disk_full(system: System, pace: Pace) -> None:
    await disk_full(system.collector_disk, system, pace)


async def clock_step(system: System, pace: Pace) -> None:
    """Agent A's clock steps forward by an hour mid-outage, has an outage, then steps back by an hour
    mid-outage and has another (an NTP step each time; through agent/clock.py's offset file)."""
    assert system.clock_file is not None
    a = system.sides[0]
    await down_seen(system, a)
    system.clock_file.write_text(str(HOUR_MS))
    await asyncio.sleep(1.0)
    await a.up()
    await asyncio.sleep(UP_S)
    await a.outage()
    await asyncio.sleep(UP_S)
    await a.down()
    await asyncio.sleep(1.0)
    system.clock_file.write_text("0")
    await asyncio.sleep(1.0)
    await a.up()
    await asyncio.sleep(UP_S)
    await a.outage()
    await asyncio.sleep(UP_S)


@dataclass(frozen=True)
class Pace:
    """How long the long-lasting faults last."""

    collector_down_s: float
    disk_full_s: float


LONG = Pace(collector_down_s=60.0, disk_full_s=30.0)  # --minutes
QUICK = Pace(collector_down_s=15.0, disk_full_s=10.0)  # --quick
Routine = Callable[[System, Pace], Awaitable[None]]


@dataclass(frozen=True)
class Fault:
    name: str
    routine: Routine
    what: str
    system: dict[str, bool] = field(default_factory=dict)
    needs: Callable[[], str | None] = lambda: None
    settle_s: float = SETTLE_S


def postgres_unavailable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(POSTGRES, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # not installed, not reachable, refused
        return f"PostgreSQL unavailable at {POSTGRES}: {str(exc).strip().splitlines()[0]}"
    return None


FAULTS = (
    Fault("agent-kill", agent_kill, "agent kill -9 mid-outage"),
    Fault("broker-kill", broker_kill, "broker kill -9 and restart"),
    Fault("collector-kill", collector_kill, "collector kill -9 for a minute"),
    # A step the killed collector had claimed waits for its lease (RetryPolicy.lease_ms, 126 s by default).
    Fault("collector-kill-ticket", collector_kill_in_ticket, "collector kill -9 during a ticket create",
          settle_s=SETTLE_S + 130),
    Fault("pg-restart", pg_restart, "PostgreSQL restarted under the collector", {"postgres": True},
          postgres_unavailable),
    Fault("agent-disk-full", agent_disk_full, "agent disk full", {"agent_disk": True}, SmallDisk.available),
    Fault("collector-disk-full", collector_disk_full, "collector disk full", {"collector_disk": True},
          SmallDisk.available),
    Fault("clock-step", clock_step, "agent clock stepped +1 h and back (NTP)", {"clock_file": True}),
)
BY_NAME = {f.name: f for f in FAULTS}


CollectorCommand = Callable[[Path], list[str]]
FIGURE_TRIES = 5


def collector_cli(config: Path) -> list[str]:
    return [str(LINEWARDEN), "collector", "run", "--config", str(config)]


async def run_fault(fault: Fault, directory: Path, minutes: float | None, pace: Pace | None = None,
                    collector: CollectorCommand = collector_cli, settle_s: float | None = None) -> Figures:
    """One fault on a fresh system in `directory`; minutes None: the routine once. The test suite passes a
    shorter pace, and a collector command whose ticket leases are short, and with it a shorter settle time."""
    started = time.monotonic()
    pace = pace or (QUICK if minutes is None else LONG)
    reason = fault.needs()
    if reason is not None:
        return Figures(fault.name, skipped=reason)
    async with System(directory, collector=collector, **fault.system) as system:
        stop = asyncio.Event()
        background = asyncio.create_task(background_outages(system.sides[1], stop))
        try:
            end = started + 60 * (minutes or 0)
            while True:
                await fault.routine(system, pace)
                if time.monotonic() >= end:
                    break
        finally:
            stop.set()
            await background
        settling = time.monotonic()
        try:
            await wait_for(system.settled, settle_s or fault.settle_s, "outboxes acked, incidents ticketed")
            settled = True
        except TimeoutError:
            settled = False
        fig = system.figures(fault.name)
        for _ in range(FIGURE_TRIES if settled else 0):
            # The agents keep producing (heartbeats): one made between the settle check and the count is
            # still on its way. Count again once it is acked; a seq held for good stays held.
            if fig.held == 0:
                break
            with contextlib.suppress(TimeoutError):
                await wait_for(system.settled, 5.0, "the in-flight events acked")
            fig = system.figures(fault.name)
        fig.settled = settled
        fig.settle_s = time.monotonic() - settling
        fig.seconds = time.monotonic() - started
        if not fig.ok:
            for service in system.services:
                fig.notes.append(f"--- {service.name} log tail:\n{service.tail(1500)}")
        return fig


# ---------------------------------------------------------------- report


COLUMNS = ("fault", "produced", "stored", "declared_lost", "held", "lost", "duplicated", "outages", "incidents",
           "missed", "tickets_expected", "tickets_received", "duplicate_requests", "duplicate_tickets",
           "crashes", "result")
HEADS = ("fault", "produced", "stored", "gap", "held", "lost", "dup", "outages", "incid.", "missed", "tk exp",
         "tk recv", "dup req", "dup tk", "crash", "result")


def row(fig: Figures) -> list[str]:
    if fig.skipped is not None:
        return [fig.fault, *["-"] * (len(COLUMNS) - 2), "skipped"]
    result = "ok" if fig.ok else ("NOT SETTLED" if not fig.settled else "FAILED")
    return [fig.fault, *(str(getattr(fig, c)) for c in COLUMNS[1:-1]), result]


def print_table(figures: Sequence[Figures]) -> None:
    rows = [list(HEADS), *(row(f) for f in figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADS))]
    for r in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--fault", action="append", choices=sorted(BY_NAME), help="run only this fault (repeatable)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, default=2.0, help="how long each fault's routine repeats")
    length.add_argument("--quick", action="store_true", help="each fault's routine once (about 30-60 s a fault)")
    parser.add_argument("--keep", action="store_true", help="keep the logs and data (printed path)")
    args = parser.parse_args(argv)
    logging.getLogger("pymodbus").setLevel(logging.ERROR)  # the simulators in this process
    faults = [BY_NAME[n] for n in args.fault] if args.fault else list(FAULTS)
    minutes = None if args.quick else args.minutes
    root = Path(tempfile.mkdtemp(prefix="lw-faults-"))
    figures: list[Figures] = []
    try:
        for fault in faults:
            print(f"-- {fault.name}: {fault.what}", flush=True)
            fig = asyncio.run(run_fault(fault, root / fault.name, minutes))
            figures.append(fig)
            if fig.skipped:
                print(f"   skipped: {fig.skipped}", flush=True)
            else:
                verdict = "ok" if fig.ok else "NOT ok"
                print(f"   {verdict} in {fig.seconds:.0f} s (settled {fig.settle_s:.0f} s after the last change); "
                      f"dead letters {fig.dead_letters}, dated ahead {fig.dated_ahead}, "
                      f"unresolved {fig.unresolved}, unacked {fig.unacked}", flush=True)
            for note in fig.notes:
                print(f"   {note}", flush=True)
    finally:
        if args.keep:
            print(f"logs and data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    command = " ".join([".venv/bin/python bench/faults.py", *(argv if argv is not None else sys.argv[1:])])
    print(f"\n{command}")
    print_table(figures)
    return 0 if all(f.ok or f.skipped for f in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
