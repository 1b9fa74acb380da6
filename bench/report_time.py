"""SLA report time: one contract over 1,000 assets with a year of history, month by month.

    .venv/bin/python bench/report_time.py [--store sqlite|postgres] [--assets 1000] [--days 365] [--profile]

Builds a fresh store (SQLite in a temp dir, or with `--store postgres` a schema of its own in the PostgreSQL at
$LINEWARDEN_TEST_POSTGRES, default postgresql://postgres@127.0.0.1:5432/test, dropped at the end), written through
the store's Writer in one transaction per agent (not through MQTT; the load is timed apart): 20 assets per agent,
one target each, criticalities 10 % critical, 30 % high, 40 % medium, 20 % low. Per asset about three outages a
month (DOWN, or DEGRADED one time in five; 2 min to 24 h), each with its state changes and an incident (opened,
sometimes escalated, resolved) whose ticket records are: raised (nine in ten), triaged, acknowledged, paused and
resumed (one in ten), workaround accepted (one in five), resolution claimed, and RCA received for S1. Per agent and
month one monitoring gap and one maintenance window over five of its assets (one in ten announced at short notice,
one in twenty cancelled), a monthly window of the service, and a software change per asset about every two months
(six in ten inside a window naming the asset, when there is one). Event and metrics rows, which no report reads,
are left out.

The contract (written as TOML in the temp dir, loaded with `load_book`) covers every asset by asset class,
with an uptime line per class and one for a 2-of-3 service; support runs on a business-hours calendar,
the critical line on the plant's production calendar (copies of config/calendars/).

Prints the load time, then the time of `reports(store, book, "YYYY-MM")` for each full month in the data
(the first call is cold), wall and CPU (this process's, plus on PostgreSQL at this host its server backend's,
from /proc), the year's total (the yearly equivalent: 12 monthly reports), and for the last month where the
time goes: the store's period query, `sla_inputs`, and `build_report`. With `--store postgres` the same months
are then timed on the SQLite store the data was loaded into, as the comparison. Goal: < 2 s per monthly
report. `--profile` prints a cProfile of one monthly report.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from collector.archive_import import MIGRATION_STATE  # noqa: E402
from collector.reporting import LOOKBACK_MS, reports, sla_inputs  # noqa: E402
from collector.store.base import Store, Writer  # noqa: E402
from collector.store.postgres import PostgresStore  # noqa: E402
from collector.store.sqlite import SqliteStore  # noqa: E402
from linewarden.book import ContractBook, load_book  # noqa: E402
from linewarden.config.collector import CollectorConfig  # noqa: E402
from linewarden.sla.periods import Period, month, parse_month  # noqa: E402
from linewarden.sla.report import build_report  # noqa: E402
from linewarden.wire import Birth, MaintenanceWindowWire, build, parse_event  # noqa: E402

TZ = "Europe/Berlin"
START = "2025-01"
PER_AGENT = 20
SITES = 5
EPOCH = "e1"
BOOT = "b1"
SERVICE = "line-1"
GOAL_S = 2.0
POSTGRES = os.environ.get("LINEWARDEN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
CLASSES = [("critical", 10), ("high", 30), ("medium", 40), ("low", 20)]
SEVERITY = {"critical": 1, "high": 2, "medium": 3, "low": 4}
REASONS = ("no answer", "timeout", "bad status")
CALENDARS = ("production-plant-a", "business-hours-de")

CONTRACT = """\
[contract]
id = "bench"
vendor = "acme"
document_sha256 = "{sha}"
currency = "EUR"
fee_per_period = 25000.00
timezone = "{tz}"

[[services]]
id = "{service}"
components = {components}
rule = "k_of_n"
k = 2

[scope]
services = ["{service}"]
asset_classes = ["critical", "high", "medium", "low"]

[support]
tier = "premium"
coverage = "business-hours-de"

[support.targets]
S1 = {{ response = "1h", resolution = "8h" }}
S2 = {{ response = "2h", resolution = "16h" }}
S3 = {{ response = "4h", resolution = "3d" }}
S4 = {{ response = "1d", resolution = "10d" }}

[[uptime]]
scope = "critical"
target_pct = 99.9
coverage = "production"

[[uptime]]
scope = "high"
target_pct = 99.5

[[uptime]]
scope = "medium"
target_pct = 99.0

[[uptime]]
scope = "low"
target_pct = 98.0

[[uptime]]
scope = "{service}"
target_pct = 99.9
degraded_weight = 0.5

[maintenance]
notice = "72h"
monitoring_gaps = "exclude"

[credits]
cap_fee_pct = 30

[[credits.uptime]]
below_pct = 99.9
fee_pct = 5

[[credits.uptime]]
below_pct = 99.0
fee_pct = 15

[credits.breach]
S1 = {{ response_fee_pct = 2, resolution_fee_pct = 5 }}
S2 = {{ response_amount = 100.00, resolution_amount = 250.00 }}
"""


def criticality(asset_index: int) -> str:
    slot = asset_index % 100
    for name, share in CLASSES:
        if slot < share:
            return name
        slot -= share
    raise AssertionError("the shares add up to 100")


@dataclass
class AgentData:
    """One agent's history, in the shapes the Writer takes."""

    site: str
    agent: str
    assets: list[str]
    events: list[dict[str, Any]] = field(default_factory=list)
    tickets: list[tuple[str, str, int, dict[str, Any]]] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    windows: list[MaintenanceWindowWire] = field(default_factory=list)
    cancelled: dict[str, int] = field(default_factory=dict)

    def event(self, type_: str, ts: int, body: dict[str, Any]) -> None:
        self.events.append({"seq": len(self.events) + 1, "ts": ts, "type": type_, "body": body})


def _severity(rank: int) -> str:
    return f"S{min(4, max(1, rank))}"


def outages(data: AgentData, asset: str, crit: str, start: int, end: int, rng: random.Random) -> None:
    target = f"t-{asset}"

    def change(frm: str, to: str, at: int) -> None:
        body = {"target": target, "asset": asset, "from": frm, "to": to, "reason": "probe", "at": at}
        data.event("state_change", at + 5_000, body)

    change("UNKNOWN", "UP", start)
    at, n = start, 0
    while True:
        at += int(rng.expovariate(1 / (10 * DAY)))
        roll = rng.random()
        length = rng.randrange(2 * MIN, 30 * MIN) if roll < 0.7 else (
            rng.randrange(30 * MIN, 4 * HOUR) if roll < 0.95 else rng.randrange(4 * HOUR, DAY))
        if at + length + 2 * MIN >= end:
            return
        n += 1
        state = "DEGRADED" if rng.random() < 0.2 else "DOWN"
        rank = SEVERITY[crit] + (1 if state == "DEGRADED" else 0)
        incident, opened, restored = f"inc-{asset}-{n}", at + 15_000, at + length
        change("UP", state, at)
        body = {
            "incident": incident, "target": target, "asset": asset, "criticality": crit,
            "severity": _severity(rank), "state": state, "reason": rng.choice(REASONS),
            "in_production": rng.random() < 0.7, "opened_at": opened,
        }
        data.event("incident_opened", opened, body)
        if rng.random() < 0.15:
            mid = opened + (restored - opened) // 2
            data.event("incident_updated", mid, {"incident": incident, "severity": _severity(rank - 1),
                                                 "state": "DOWN", "reason": body["reason"], "in_production": True,
                                                 "at": mid})
        change(state, "UP", restored)
        data.event("incident_resolved", restored + MIN, {"incident": incident, "at": restored + MIN})
        tickets(data, incident, rank, opened, restored, rng)
        at = restored + MIN


def tickets(data: AgentData, incident: str, rank: int, opened: int, restored: int, rng: random.Random) -> None:
    if rng.random() < 0.1:
        return  # never raised (e.g. inside a maintenance window)
    raised = opened + 30_000
    acked = raised + rng.randrange(MIN, 3 * HOUR)
    steps: list[tuple[str, int, dict[str, Any]]] = [
        ("ticket_raised", raised, {"ref": f"T-{incident}"}),
        ("ticket_triaged", raised + 2 * MIN, {"severity": _severity(rank + rng.choice((0, 0, 1)))}),
        ("ticket_acknowledged", acked, {}),
    ]
    if rng.random() < 0.1:
        steps += [("ticket_paused", acked + 10 * MIN, {}), ("ticket_resumed", acked + 70 * MIN, {})]
    if rng.random() < 0.2:
        steps.append(("workaround_accepted", max(acked, restored - MIN), {}))
    steps.append(("resolution_claimed", restored + 5 * MIN, {}))
    if rank == 1:
        steps.append(("rca_received", restored + rng.randrange(DAY, 8 * DAY), {}))
    data.tickets += [(incident, kind, at, details) for kind, at, details in steps]


def agent_history(index: int, assets: list[tuple[str, str]], start: int, end: int) -> AgentData:
    rng = random.Random(index)
    data = AgentData(f"plant-{index % SITES + 1}", f"agent-{index:03d}", [a for a, _ in assets])
    windows(data, index, start, end, rng)
    for asset, crit in assets:
        outages(data, asset, crit, start, end, rng)
        changes(data, asset, start, end, rng)
    return data


def changes(data: AgentData, asset: str, start: int, end: int, rng: random.Random) -> None:
    """About one software change every two months, six in ten inside a window naming the asset."""
    mine = [w for w in data.windows if asset in w.assets and w.id not in data.cancelled]
    at = start
    while (at := at + int(rng.expovariate(1 / (60 * DAY)))) < end:
        inside = [w for w in mine if w.start > at - 30 * DAY and w.end < end]
        when = inside[0].start + 10 * MIN if inside and rng.random() < 0.6 else at
        body = {"target": f"t-{asset}", "asset": asset, "what": "firmware", "old": "1.0", "new": "1.1", "at": when}
        data.event("change_detected", when, body)


def windows(data: AgentData, index: int, start: int, end: int, rng: random.Random) -> None:
    for m_start in range(start, end - 30 * DAY, 30 * DAY):
        s = m_start + rng.randrange(25 * DAY)
        data.gaps.append((s, s + rng.randrange(5 * MIN, 2 * HOUR)))
        w_start = m_start + rng.randrange(2 * DAY, 28 * DAY)
        notice = DAY if rng.random() < 0.1 else 7 * DAY
        window = MaintenanceWindowWire(
            id=f"mw-{data.agent}-{m_start // DAY}", start=w_start, end=w_start + rng.randrange(2, 5) * HOUR,
            assets=rng.sample(data.assets, min(5, len(data.assets))), announced_at=w_start - notice,
            announced_by="plant-it", reason="patching",
        )
        data.windows.append(window)
        if rng.random() < 0.05:
            data.cancelled[window.id] = window.announced_at + HOUR
        if index == 0:
            s = m_start + 14 * DAY
            data.windows.append(MaintenanceWindowWire(
                id=f"mw-{SERVICE}-{m_start // DAY}", start=s, end=s + 3 * HOUR, services=[SERVICE],
                announced_at=s - 5 * DAY, announced_by="plant-it", reason="line upgrade"))


def birth(data: AgentData, crit: dict[str, str], at: int) -> Birth:
    targets = [{"id": f"t-{a}", "kind": ("opcua", "modbus", "http")[i % 3], "asset": a, "criticality": crit[a]}
               for i, a in enumerate(data.assets)]
    return build(Birth, {"agent": data.agent, "site": data.site, "epoch": EPOCH, "boot": BOOT, "ts": at,
                         "version": "bench", "config_hash": "-", "targets": targets})


def write(tx: Writer, data: AgentData, crit: dict[str, str], start: int) -> None:
    tx.record_birth(birth(data, crit, start), start)
    for e in data.events:
        tx.insert_event(data.site, data.agent, EPOCH, BOOT, parse_event(e), e["ts"] + 2_000)
    for incident, kind, at, details in data.tickets:
        tx.add_ticket_record(incident, kind, at, "vendor-desk", details, "bench")
    for gap_start, gap_end in data.gaps:
        tx.add_gap(data.site, data.agent, gap_start, gap_end, "missed heartbeats", BOOT)
    for w in data.windows:
        tx.add_maintenance_window(data.site, w, data.cancelled.get(w.id))


def load(store: Store, n_assets: int, start: int, end: int) -> dict[str, str]:
    crit = {f"asset-{i:04d}": criticality(i) for i in range(n_assets)}
    names = list(crit)
    for index, first in enumerate(range(0, n_assets, PER_AGENT)):
        assets = [(a, crit[a]) for a in names[first : first + PER_AGENT]]
        data = agent_history(index, assets, start, end)
        with store.transaction() as tx:
            write(tx, data, crit, start)
    return crit


def contract_book(directory: Path, service: list[str]) -> ContractBook:
    (directory / "contracts").mkdir()
    (directory / "calendars").mkdir()
    for name in CALENDARS:
        shutil.copy(REPO / "config" / "calendars" / f"{name}.toml", directory / "calendars")
    (directory / "contracts" / "bench.toml").write_text(
        CONTRACT.format(sha="0" * 64, tz=TZ, service=SERVICE, components=json.dumps(service))
    )
    config = CollectorConfig.model_validate({"collector": {"production_calendar": CALENDARS[0]}})
    return load_book(config, directory / "collector.toml")


def months_within(start: int, end: int) -> list[Period]:
    first = parse_month(START, TZ)
    year, no = int(START[:4]), int(START[5:])
    out = []
    period = first
    while period.end_ms <= end:
        if period.start_ms >= start:
            out.append(period)
        year, no = (year + 1, 1) if no == 12 else (year, no + 1)
        period = month(year, no, TZ)
    return out


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


class CpuMeter:
    """CPU seconds of this process plus, on PostgreSQL at this host, of the store's server backend (read from
    /proc): on a shared box the wall time measures the other jobs too, the CPU time only the report."""

    def __init__(self, store: Store) -> None:
        self.backend: Path | None = None
        if isinstance(store, PostgresStore):
            with store.reader() as sql:
                pid = int(sql.query("SELECT pg_backend_pid() AS pid")[0]["pid"])
            stat = Path(f"/proc/{pid}/stat")
            self.backend = stat if stat.exists() else None  # a server on another host: client CPU only

    def server_s(self) -> float:
        if self.backend is None:
            return 0.0
        fields = self.backend.read_text().rsplit(")", 1)[1].split()  # utime, stime: fields 14, 15 of stat
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def timed(self, fn: Any, *args: Any) -> tuple[Any, float, float, float]:
        """(result, wall s, client CPU s, server CPU s)."""
        c0, s0 = time.process_time(), self.server_s()
        out, wall = timed(fn, *args)
        return out, wall, time.process_time() - c0, self.server_s() - s0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--assets", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--profile", action="store_true", help="cProfile one monthly report (the last month)")
    args = parser.parse_args()
    start = parse_month(START, TZ).start_ms
    end = start + args.days * DAY
    periods = months_within(start, end)
    if args.assets < 3 or not periods:
        parser.error("need at least 3 assets and --days covering one full month (31)")
    with tempfile.TemporaryDirectory(prefix="lw-bench-") as tmp:
        directory = Path(tmp)
        schema = f"lw_bench_report_{os.getpid()}"
        store: Store
        if args.store == "postgres":
            store = PostgresStore(POSTGRES, schema=schema)
        else:
            store = SqliteStore(directory / "collector.db")
        try:
            _run(args, store, directory, start, end, periods)
        finally:
            store.close()
            if args.store == "postgres":
                with psycopg.connect(POSTGRES, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def copy_tables(source: SqliteStore, schema: str) -> None:
    """Every row of `source` into the same tables of the PostgreSQL schema (migrated already), by COPY."""
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}")
        for table in source.table_names():
            if table in MIGRATION_STATE:  # the schema's own rows, seeded by the migrations
                continue
            columns = source.table_columns(table)
            with source.reader() as sql:
                rows = sql.query(f"SELECT * FROM {table}")
            if not rows:
                continue
            with conn.transaction(), conn.cursor() as cur, cur.copy(
                f"COPY {table} ({', '.join(columns)}) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row([row[c] for c in columns])
        conn.execute("ANALYZE")


def _size_mb(store: Store, directory: Path) -> float:
    if not isinstance(store, PostgresStore):
        return sum(p.stat().st_size for p in directory.glob("collector.db*")) / 2**20
    with store.reader() as sql:
        return float(sql.query("SELECT SUM(pg_total_relation_size(c.oid)) AS n FROM pg_class c"
                               " JOIN pg_namespace s ON s.oid = c.relnamespace"
                               " WHERE s.nspname = current_schema() AND c.relkind = 'r'")[0]["n"]) / 2**20


def _run(
    args: argparse.Namespace, store: Store, directory: Path, start: int, end: int, periods: list[Period]
) -> None:
    store.migrate()
    staging: SqliteStore | None = None
    if isinstance(store, PostgresStore):
        # Statement by statement over the network the load takes most of an hour: written into SQLite through
        # the same Writer, then copied table by table with COPY. The SQLite copy is timed too, as the comparison.
        staging = SqliteStore(directory / "collector.db")
        staging.migrate()
        crit, load_s = timed(load, staging, args.assets, start, end)
        _, copy_s = timed(copy_tables, staging, f"lw_bench_report_{os.getpid()}")
        load_s += copy_s
    else:
        crit, load_s = timed(load, store, args.assets, start, end)
    try:
        _measure(args, store, staging, directory, crit, load_s, periods)
    finally:
        if staging is not None:
            staging.close()


def _months(store: Store, book: ContractBook, periods: list[Period]) -> tuple[list[float], list[float]]:
    """Time each month's `reports()`, printing one line per month (the first call is cold); return the wall
    times and the CPU times (client and, on PostgreSQL here, its backend)."""
    meter = CpuMeter(store)
    times, cpus = [], []
    for i, period in enumerate(periods):
        found, seconds, client, server = meter.timed(reports, store, book, period.label)
        times.append(seconds)
        cpus.append(client + server)
        r = found[0]
        cpu = f"CPU {client + server:5.2f} s" + (f" ({client:.2f} + server {server:.2f})" if meter.backend else "")
        print(f"  {period.label}  {seconds:6.2f} s{' (cold)' if i == 0 else '       '}  {cpu}  "
              f"{len(r.incidents):>5} incidents, {len(r.exclusions):>5} exclusions, "
              f"{len(r.unapproved_changes):>4} unapproved changes")
    summary = ", ".join(f"{u.scope} {u.uptime_pct} %{'' if u.met else ' NO'}" for u in r.uptime)
    print(f"{periods[-1].label} report: uptime {summary}; {len(r.short_notice)} short-notice windows; "
          f"credits {r.credits.total} {r.currency}")
    return times, cpus


def _stats(values: list[float]) -> str:
    return f"max {max(values):.2f} s, mean {sum(values) / len(values):.2f} s"


def _split(store: Store, book: ContractBook, last: Period) -> str:
    data, query_s = timed(store.period, last.start_ms - LOOKBACK_MS, last.end_ms)
    inputs, map_s = timed(sla_inputs, data)
    _, build_s = timed(build_report, book.contract("bench"), last, inputs, book.calendars)
    return f"store.period {query_s:.2f} s, sla_inputs {map_s:.2f} s, build_report {build_s:.2f} s"


def _measure(
    args: argparse.Namespace, store: Store, staging: SqliteStore | None, directory: Path, crit: dict[str, str],
    load_s: float, periods: list[Period],
) -> None:
    book = contract_book(directory, [a for a, c in crit.items() if c == "critical"][:3])
    with store.reader() as sql:
        counts = {t: sql.query(f"SELECT COUNT(*) AS n FROM {t}")[0]["n"] for t in (
            "state_changes", "incidents", "incident_updates", "ticket_records", "gaps", "maintenance_windows",
            "changes")}
    size_mb = _size_mb(store, directory)
    print(f"SLA report bench on {args.store}: {args.assets:,} assets, {args.days} days from {START}, 1 contract, "
          f"{len(book.contract('bench').uptime)} uptime lines")
    print(f"load: {load_s:.1f} s (not part of the figures), {size_mb:.0f} MB; rows: "
          + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    times, cpus = _months(store, book, periods)
    last = periods[-1]
    split = _split(store, book, last)
    verdict = {True: "met", False: "NOT met"}
    print(f"monthly report: wall {_stats(times)} (goal < {GOAL_S:.0f} s: {verdict[max(times) < GOAL_S]});"
          f" CPU {_stats(cpus)} ({verdict[max(cpus) < GOAL_S]} in CPU time)")
    print(f"{len(periods)} monthly reports{' (the year)' if len(periods) == 12 else ''}: {sum(times):.1f} s")
    print(f"{last.label} split: {split}")
    if staging is not None:
        print("\nthe same months on the SQLite store the data was loaded into (comparison, same run):")
        base, base_cpus = _months(staging, book, periods)
        print(f"SQLite monthly report: wall {_stats(base)}, CPU {_stats(base_cpus)}; {len(periods)} reports"
              f" {sum(base):.1f} s; {last.label} split: {_split(staging, book, last)}")
        print(f"PostgreSQL / SQLite, sum of the months: wall {sum(times) / sum(base):.2f} x,"
              f" CPU {sum(cpus) / sum(base_cpus):.2f} x")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(reports, store, book, last.label)
        print(f"\nwhere reports(store, book, {last.label!r}) spends its time (cProfile, top 25 by own time):")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
