"""`linewarden agent run|check|status --config FILE`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from linewarden.config.agent import AgentConfig
from linewarden.config.load import load
from linewarden.errors import ConfigError
from linewarden.output import FORMATS, render
from linewarden.production import load_production_calendar
from linewarden.timeutil import ms_to_dt

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linewarden agent", description="the linewarden edge agent")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="poll targets and forward events until stopped (SIGTERM/Ctrl-C)")
    run.add_argument("--config", type=Path, required=True)
    check = sub.add_parser(
        "check", help="validate the config, probe each target once, print the results (exit 1 if any is not UP)"
    )
    check.add_argument("--config", type=Path, required=True)
    check.add_argument("--format", choices=FORMATS, default="table")
    status = sub.add_parser("status", help="states, open incidents and outbox figures from the local database")
    status.add_argument("--config", type=Path, required=True)
    status.add_argument("--format", choices=FORMATS, default="table")
    return parser


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    cfg = load(AgentConfig, args.config)
    if args.cmd != "status":
        load_production_calendar(cfg, args.config)  # a bad calendar stops here, with the config's message
    if args.cmd == "run":
        return _run(cfg, args.config)
    if args.cmd == "check":
        return asyncio.run(_check(cfg, args.format))
    return _status(cfg, args.format)


def _run(cfg: AgentConfig, path: Path) -> int:
    from agent.runtime import Agent

    logging.basicConfig(
        level=cfg.agent.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # The libraries log every dropped connection; the agent reports outages itself, on state edges.
    for noisy in ("asyncua", "pymodbus", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    async def main_task() -> None:
        agent = Agent(cfg, path)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
                loop.add_signal_handler(sig, lambda: asyncio.ensure_future(agent.stop()))
        await agent.run()

    try:
        asyncio.run(main_task())
    except KeyboardInterrupt:
        return EXIT_OK
    except ConfigError:
        raise  # exit 2 with its one-line message
    except Exception as exc:  # the last line of defence: say what failed, exit 1
        logging.getLogger("linewarden.agent").exception("agent failed: %s", exc)
        return EXIT_RUNTIME
    return EXIT_OK


async def _check(cfg: AgentConfig, fmt: str) -> int:
    from agent.probes.context import ProbeContext
    from agent.probes.registry import make_probe, safe_poll
    from linewarden.debounce import is_configuration, judge

    context = ProbeContext()
    probes = [(t, make_probe(t, cfg.defaults, context)) for t in cfg.targets]
    try:
        results = await asyncio.gather(*(safe_poll(p, time.time()) for _, p in probes))
    finally:
        await context.close()
    rows: list[dict[str, Any]] = []
    for (t, _), r in zip(probes, results, strict=True):
        # one probe, no history: a fault that may be the config's is judged as for a target never seen working
        state, reason, cause = judge(r.state, r.reason, r.cause, r.configuration, worked=False)
        rows.append(
            {
                "target": t.id,
                "kind": t.type,
                "asset": t.asset,
                "state": state.value,
                "latency_ms": None if r.latency_ms is None else round(r.latency_ms, 1),
                "cause": cause,
                "reason": reason,
            }
        )
        if is_configuration(state, cause):
            print(f"{t.id}: the agent config is wrong here, not the device: {reason}", file=sys.stderr)
    print(render(rows, fmt))  # type: ignore[arg-type]
    return EXIT_OK if all(row["state"] == "UP" for row in rows) else EXIT_RUNTIME


def _iso(ms: int | None) -> str | None:
    return None if ms is None else ms_to_dt(ms).isoformat(timespec="seconds")


def _status(cfg: AgentConfig, fmt: str) -> int:
    from agent.outbox import Outbox

    db = cfg.agent.data_dir / "outbox.db"
    if not db.exists():
        print(f"no agent data in {cfg.agent.data_dir} yet (has `linewarden agent run` started?)", file=sys.stderr)
        return EXIT_RUNTIME
    outbox = Outbox(db, cfg.outbox)
    try:
        stats = outbox.stats()
        saved: dict[str, Any] = outbox.get_state("runtime") or {}
        link: dict[str, Any] = outbox.get_state("link") or {}
        health: dict[str, Any] = outbox.get_state("health") or {}
    finally:
        outbox.close()
    debouncers = saved.get("debouncers", {})
    incidents = saved.get("incidents", {}).get("incidents", [])
    targets = [
        {"target": t.id, "kind": t.type, "asset": t.asset, "state": debouncers.get(t.id, {}).get("state", "UNKNOWN")}
        for t in cfg.targets
    ]
    open_incidents = [
        {
            "incident": i["id"],
            "kind": i["kind"],
            "targets": i["members"],
            "severity": i["severity"],
            "state": i["state"],
        }
        for i in incidents
    ]
    summary = {
        "agent": cfg.agent.id,
        "site": cfg.agent.site,
        "epoch": stats.epoch,
        "outbox_depth": stats.depth,
        "oldest_unacked": _iso(stats.oldest_ts),
        "last_ack_seq": stats.last_ack_seq,
        "last_ack_at": _iso(stats.last_ack_at_ms),
        "next_seq": stats.next_seq,
        "broker_connected": link.get("connected"),
        "collector_online": link.get("collector_online"),
        "link_updated_at": _iso(link.get("at_ms")),
        # As of link_updated_at: written by the running agent when they change.
        "outbox_fault": health.get("outbox_fault"),
        "unkept_events": health.get("unkept_total", 0),
        "rejected_acks": health.get("rejected_acks", 0),
        "task_crashes": sum(health.get("task_crashes", {}).values()),
    }
    if fmt == "json":
        print(json.dumps({"summary": summary, "targets": targets, "open_incidents": open_incidents}, indent=2))
        return EXIT_OK
    print(render([summary], fmt))  # type: ignore[arg-type]
    print()
    print(render(targets, fmt, ["target", "kind", "asset", "state"]))  # type: ignore[arg-type]
    print()
    print(render(open_incidents, fmt, ["incident", "kind", "targets", "severity", "state"]))  # type: ignore[arg-type]
    return EXIT_OK
