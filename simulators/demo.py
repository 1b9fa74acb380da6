"""`linewarden demo`: a plant in a box. One process runs an MQTT broker (embedded, unless `--broker` names
one), the simulators of a small plant, one agent, the collector with two contracts and its API, and two
vendors' webhook receivers; plays a shift (config/scenarios/demo.toml), narrates what happens, then prints
the month's SLA report and leaves the data where `linewarden collector report` reads it.

A month cannot be waited for: the live part lasts about a minute and the demo contracts count response times
in seconds instead of hours. The report is of the month so far (a partial period, as of the demo's end); both
contracts exclude unmonitored time, so its figures are those of the minute watched, and each uptime line says
how small a share of the month that is.
Logs of every part go to <data>/demo.log; the screen shows only the story. Then, unless `--no-console`, the
web console serves the demo's data on a free loopback port with a login made for the run, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from agent.runtime import Agent
from collector.console.demo import serve_console
from collector.maintenance import announcement, announcement_topics, publish_announcement
from collector.reporting import reports
from collector.service import CollectorService, wall_clock_ms
from collector.store import Store, open_store
from collector.ticketing.plant_it import PLANT_IT
from collector.tokens import create_token
from linewarden.book import load_book
from linewarden.cli import main as cli_main
from linewarden.config.agent import AgentConfig
from linewarden.config.base import BrokerConfig
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load, validate
from linewarden.errors import ConfigError, LinewardenError
from linewarden.timeutil import dt_to_ms
from linewarden.wire import MaintenanceWindowWire
from simulators.config import PlantConfig, ScenarioConfig
from simulators.demo_broker import EmbeddedBroker
from simulators.demo_files import WEBHOOK_SECRET_FILE, prepare, shipped, write_configs
from simulators.demo_narrator import Narrator, StoreWatcher
from simulators.demo_vendor import DemoVendors, Desk, Say
from simulators.plant import Plant
from simulators.scenario import Applied, ScenarioRunner

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
SITE = "demo-plant"
TIMEZONE = "Europe/Berlin"  # the demo contracts' zone: the report's month is this zone's
FAST_SPEED = 3.0
RESPONSE_S = 20.0  # demo response target at speed 1 (a real contract: hours)
RESOLUTION_S = 120.0
STARTUP_TIMEOUT_S = 45.0
SETTLE_TIMEOUT_S = 45.0

_STORY = {
    ("line1-plc", "down"): "planned stop of line1-plc (the work announced 4 days ago)",
    ("line2-gw", "exception"): "line2-plc fails during the shift: its gateway answers 'target device failed to "
    "respond' (inside a window announced only 1 h ago)",
    ("line2-gw", "clear"): "line2-plc is back: the gateway answers for it again",
    ("mes", "slow"): "the MES gets slow (answers take 1.2 s)",
    ("mes", "fast"): "the MES answers quickly again",
}


@dataclass(frozen=True)
class Pace:
    """Timing of one run: the scenario is compressed by `speed`, and so are the contract targets and the
    vendors' reaction times, so an escalation and a late acknowledgement happen at any speed."""

    speed: float

    def seconds(self, at_speed_1: float) -> float:
        return at_speed_1 / self.speed

    def duration(self, at_speed_1: float) -> str:
        return f"{max(1, round(at_speed_1 / self.speed))}s"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="linewarden demo",
        description="a plant in a box: simulators, an agent, the collector, two vendors, an outage and the "
        "month's SLA report (about 80 s; --fast about 30 s)",
    )
    p.add_argument("--broker", metavar="HOST:PORT", help="use this MQTT broker instead of the embedded one")
    p.add_argument("--data-dir", type=Path, default=Path("linewarden-demo"),
                   help="where the demo keeps its configs and data (wiped at start; default ./linewarden-demo)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--fast", action="store_true", help=f"the short run of the test suite (--speed {FAST_SPEED})")
    pace.add_argument("--speed", type=float, default=1.0, help="time compression of the scenario (default 1)")
    p.add_argument("--no-console", action="store_true",
                   help="exit after the report instead of serving the console on the demo's data")
    return p


def _broker_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("command line", "--broker", f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    speed = FAST_SPEED if args.fast else args.speed
    if not 0.1 <= speed <= 10:
        print("error: --speed must be between 0.1 and 10", file=sys.stderr)
        return EXIT_USAGE
    try:
        broker = _broker_address(args.broker) if args.broker else None
        folder = prepare(args.data_dir)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _log_to(folder / "demo.log")
    try:
        code = asyncio.run(_main(folder, broker, Pace(speed)))
        if code != EXIT_OK or args.no_console:
            return code
        asyncio.run(serve_console(folder / "collector.toml"))
        return EXIT_OK
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: everything the demo started is stopped", file=sys.stderr)
        return EXIT_RUNTIME


def _log_to(path: Path) -> None:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("asyncua", "pymodbus", "httpx", "uvicorn", "amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def _main(folder: Path, broker: tuple[str, int] | None, pace: Pace) -> int:
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def stop_once() -> None:  # a second Ctrl-C must not cut short the clean stop the first one started
        if main_task is not None and not main_task.cancelling():
            print("\nstopping everything the demo started ...", file=sys.stderr, flush=True)
            main_task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
            loop.add_signal_handler(sig, stop_once)
    narrator = Narrator()
    try:
        month = await _live(folder, broker, pace, narrator)
    except (LinewardenError, OSError, TimeoutError) as exc:
        logging.getLogger("linewarden.demo").exception("demo failed")
        narrator.say(f"the demo failed: {exc} (details in {folder / 'demo.log'})")
        return EXIT_RUNTIME
    except Exception as exc:  # the last line of defence: everything is stopped by now; say what failed
        logging.getLogger("linewarden.demo").exception("demo failed")
        narrator.say(f"the demo failed unexpectedly: {type(exc).__name__}: {exc} (traceback in demo.log)")
        return EXIT_RUNTIME
    return _final_report(folder, month)


async def _live(folder: Path, broker: tuple[str, int] | None, pace: Pace, narrator: Narrator) -> str:
    say = narrator.say
    say(f"linewarden demo: data in {folder} (logs in demo.log); scenario speed {pace.speed:g}")
    async with AsyncExitStack() as stack:
        if broker is None:
            embedded = EmbeddedBroker()
            await embedded.start()
            stack.push_async_callback(embedded.stop)
            broker = (embedded.host, embedded.port)
            say(f"MQTT broker started inside this process on {embedded.host}:{embedded.port} (amqtt, MQTT 3.1.1)")
        else:
            say(f"using the MQTT broker at {broker[0]}:{broker[1]}")

        plant = Plant.from_config(validate(PlantConfig, _shipped_toml("plant.toml"), "demo_data/plant.toml"))
        await plant.start()
        stack.push_async_callback(plant.stop)
        opcua, modbus, mes = (plant.device(n) for n in ("line1-plc", "line2-gw", "mes"))
        say(f"plant simulators up: line1-plc (OPC UA {opcua.endpoint}), line2-gw (Modbus TCP gateway "
            f"{modbus.endpoint}, PLCs at units 1 and 2), MES ({mes.endpoint})")

        desks = [
            Desk("integrator", "Integrator", "INT", pace.seconds(3), claims_early=False),
            Desk("acme", "ACME", "ACME", pace.seconds(RESPONSE_S * 1.5), claims_early=True),
        ]
        secret = (folder / WEBHOOK_SECRET_FILE).read_text(encoding="utf-8").strip()
        vendors = DemoVendors(say, desks, secret)
        await vendors.start()
        stack.push_async_callback(vendors.stop)
        say(f"vendor webhook receivers listening at {vendors.url}/acme and {vendors.url}/integrator")

        write_configs(folder, {
            "broker_host": broker[0], "broker_port": str(broker[1]), "vendor_url": vendors.url,
            "opcua_endpoint": opcua.endpoint, "modbus_port": str(modbus.port), "mes_url": mes.endpoint,
            "response": pace.duration(RESPONSE_S), "resolution": pace.duration(RESOLUTION_S),
        })
        config_path = folder / "collector.toml"
        config = load(CollectorConfig, config_path)
        book = load_book(config, config_path)
        store = open_store(config)
        stack.callback(store.close)
        say(f"contracts loaded: acme-mes (24x7 premium, MES) and integrator-plc (business hours, PLC programs); "
            f"the demo contracts use seconds where a real one says hours: response {pace.duration(RESPONSE_S)}")
        await _record_windows(store, BrokerConfig(host=broker[0], port=broker[1]), say)
        tokens = {d.vendor: create_token(store, "vendor", d.vendor, "demo vendor desk", wall_clock_ms(), "demo",
                                         socket.gethostname())[0] for d in desks}

        service = CollectorService(config, store, book=book, serve_api=True, ticket_poll_s=0.25,
                                   liveness_every_s=1.0)
        await service.start()
        stack.push_async_callback(service.stop)
        say(f"collector running; its API at http://127.0.0.1:{service.api_port} (vendor tokens created)")

        agent_path = folder / "agent.toml"
        agent_cfg = load(AgentConfig, agent_path)
        agent = Agent(agent_cfg, agent_path)
        agent_task = asyncio.create_task(agent.run(), name="demo-agent")
        stack.push_async_callback(_stop_agent, agent, agent_task)
        say(f"agent {agent_cfg.agent.id} polling {len(agent_cfg.targets)} targets every 0.5-1 s, forwarding over MQTT")

        stop = asyncio.Event()
        watcher = StoreWatcher(store, narrator, {a.id: a.name for a in agent_cfg.assets},
                               agent_cfg.defaults.fail_threshold)
        background = [
            asyncio.create_task(watcher.run(stop), name="demo-narrator"),
            asyncio.create_task(vendors.run(f"http://127.0.0.1:{service.api_port}", tokens, stop), name="vendors"),
        ]
        try:
            await _wait(lambda: _all_up(store, len(agent_cfg.targets)), STARTUP_TIMEOUT_S, "every target UP")
            watcher.poll()
            say("every target is UP: the shift starts")
            scenario = validate(ScenarioConfig, _shipped_toml("scenario.toml"), "demo_data/scenario.toml")
            runner = ScenarioRunner(plant, scenario, speed=pace.speed, on_applied=lambda a: _tell(a, say))
            await runner.run()
            await _wait(lambda: _settled(store), SETTLE_TIMEOUT_S, "incidents resolved and tickets closed")
            watcher.poll()
            say("every incident resolved and every vendor ticket closed: stopping the agent")
            await _stop_agent(agent, agent_task)
            await _wait(lambda: _agent_stopped(store), 15, "the agent's clean stop recorded")
            say("the collector recorded the agent's stop: from here on the month is unmonitored (not counted)")
        finally:
            stop.set()
            await asyncio.gather(*background, return_exceptions=True)
    say("everything the demo started is stopped")
    return datetime.now(ZoneInfo(TIMEZONE)).strftime("%Y-%m")


def _shipped_toml(name: str) -> dict[str, object]:
    return tomllib.loads(shipped(name))


async def _record_windows(store: Store, broker: BrokerConfig, say: Say) -> None:
    """One window with enough notice (line1-plc, 4 days) and one without (line2-plc, 1 hour); both in force
    for the next half hour, so the scenario's faults fall inside them."""
    now = wall_clock_ms()
    hour = int(timedelta(hours=1).total_seconds() * 1000)
    windows = [
        MaintenanceWindowWire(id="mw-line1-planned", kind="maintenance", start=now, end=now + hour // 2,
                              assets=["line1-plc"], announced_at=now - 96 * hour, announced_by="integrator",
                              reason="planned program update, announced 4 days ahead"),
        MaintenanceWindowWire(id="mw-line2-short", kind="maintenance", start=now, end=now + hour // 2,
                              assets=["line2-plc"], announced_at=now - hour, announced_by="integrator",
                              reason="urgent work, announced 1 hour ahead (the contract wants 72 h)"),
    ]
    with store.transaction() as tx:
        for w in windows:
            tx.add_maintenance_window(SITE, w, None)
    say("maintenance windows recorded: line1-plc announced 4 days ahead (approved), line2-plc announced only "
        "1 h ahead (short notice: counts as downtime)")
    try:
        await publish_announcement(broker, announcement(store, SITE, now), announcement_topics(store, SITE))
    except LinewardenError as exc:
        say(f"(the windows were not published to the site: {exc})")


def _tell(applied: Applied, say: Say) -> None:
    a = applied.action
    fault = "fast" if a.spec.fault == "slow" and not a.spec.ms else a.spec.fault
    story = _STORY.get((a.device, fault), f"{a.device}: {a.spec.describe()}")
    say(f"scenario: {story}" + (f" -- refused: {applied.error}" if applied.error else ""))


async def _wait(check: Callable[[], bool], limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting {limit_s:g} s for {what}")
        await asyncio.sleep(0.2)


def _all_up(store: Store, targets: int) -> bool:
    with store.reader() as sql:
        rows = sql.query("SELECT DISTINCT target FROM state_changes WHERE to_state = 'UP'")
    return len(rows) >= targets


def _settled(store: Store) -> bool:
    with store.reader() as sql:
        open_incidents = sql.query("SELECT id FROM incidents WHERE resolved_at IS NULL")
        open_tickets = sql.query(
            "SELECT incident_id FROM tickets WHERE closed_at IS NULL AND sink <> ?", (PLANT_IT,)
        )
    return not open_incidents and not open_tickets


def _agent_stopped(store: Store) -> bool:
    with store.reader() as sql:
        return bool(sql.query("SELECT 1 FROM agents WHERE death_at IS NOT NULL"))


async def _stop_agent(agent: Agent, task: asyncio.Task[None]) -> None:
    if task.done():
        return
    await agent.stop("demo finished")
    await asyncio.wait_for(task, 15)


def _final_report(folder: Path, month: str) -> int:
    config_path = folder / "collector.toml"
    now = datetime.now(ZoneInfo(TIMEZONE)).replace(microsecond=0)
    as_of = now.isoformat()
    print(f"\n======== SLA report for {month} so far, as of the demo's end {as_of} "
          "(as `linewarden collector report` prints it) ========\n")  # fmt: skip
    code = cli_main(["collector", "report", "--config", str(config_path), "--period", month, "--as-of", as_of])
    config = load(CollectorConfig, config_path)
    store = open_store(config)
    try:
        found = reports(store, load_book(config, config_path), month, as_of_ms=dt_to_ms(now))
    finally:
        store.close()
    print("How to read it: the month is not over, so this is a partial period, as of the demo's end. The agent\n"
          "watched the plant for about a minute of it; OBSERVED_PCT says how small a share that is (the rest is a\n"
          "monitoring gap, which these contracts exclude), so uptime and credits are those of the minute watched.\n"
          "A line whose only observed time lay inside approved maintenance has no uptime (n/a: not observed).\n"
          "A real contract may set [[uptime]] min_observed_pct: below it a line is 'insufficient data', no credit.")
    owed = "; ".join(f"{r.vendor} owes {r.credits.total:.2f} {r.currency}" for r in found)
    print(f"\ncredits so far this month (provisional until the month is over): {owed}")
    print(f"\nthe data stays in {folder}; look again with:\n"
          f"  linewarden collector report --config {config_path} --period {month} --as-of {as_of}\n"
          f"  linewarden collector report --config {config_path} --period {month} --format json   (as of now)")
    return code
