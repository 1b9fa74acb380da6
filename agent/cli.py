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

from linewarden.cli_options import resolve, share
from linewarden.config.agent import AgentConfig
from linewarden.config.load import load
from linewarden.errors import ConfigError
from linewarden.logs import setup_logging
from linewarden.output import FORMATS, iso_time, render
from linewarden.production import load_production_calendar

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linewarden agent", description="the linewarden edge agent")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run", help="poll targets and forward events until stopped (SIGTERM/Ctrl-C)")
    check = sub.add_parser(
        "check", help="validate the config, probe each target once, print the results (exit 1 if any is not UP)"
    )
    check.add_argument("--format", choices=FORMATS, default="table")
    trust = sub.add_parser(
        "trust", help="trust an OPC UA target's server certificate: fetch it, compare the fingerprint, save it"
    )
    trust.add_argument("--config", type=Path, required=True)
    trust.add_argument("--target", required=True, help="the OPC UA target id")
    trust.add_argument("--fingerprint", required=True, help="the SHA-256 you checked at the server itself")
    status = sub.add_parser("status", help="states, open incidents and outbox figures from the local database")
    status.add_argument("--format", choices=FORMATS, default="table")
    share(parser, "agent config (TOML)")
    return parser


def main(argv: Sequence[str]) -> int:
    parser = _parser()
    args = resolve(parser, parser.parse_args(argv))
    cfg = load(AgentConfig, args.config)
    if args.cmd != "status":
        load_production_calendar(cfg, args.config)  # a bad calendar stops here, with the config's message
    if args.cmd == "run":
        setup_logging(args.log_level or cfg.agent.log_level, args.log_format or cfg.agent.log_format)
        return _run(cfg, args.config)
    if args.cmd == "check":
        return asyncio.run(_check(cfg, args.format, args.config))
    if args.cmd == "trust":
        from agent.trust import trust_server

        return asyncio.run(trust_server(cfg, args.target, args.fingerprint))
    return _status(cfg, args.format)


def _run(cfg: AgentConfig, path: Path) -> int:
    from agent import heap
    from agent.clock import wall_clock
    from agent.runtime import Agent

    heap.limit_arenas()  # before paho's thread starts

    async def main_task() -> None:
        agent = Agent(cfg, path, clock_ms=wall_clock())
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


async def _check(cfg: AgentConfig, fmt: str, path: Path) -> int:
    from agent.probes.context import ProbeContext
    from agent.probes.registry import make_probe, safe_poll
    from agent.trust import untrusted_hint
    from linewarden.debounce import is_configuration, judge

    context = ProbeContext(opcua_trust=cfg.opcua_trust())
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
            hint = untrusted_hint(cfg, t, r, path)
            if hint:
                print(hint, file=sys.stderr)
    print(render(rows, fmt))  # type: ignore[arg-type]
    return EXIT_OK if all(row["state"] == "UP" for row in rows) else EXIT_RUNTIME


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
        "oldest_unacked": iso_time(stats.oldest_ts),
        "last_ack_seq": stats.last_ack_seq,
        "last_ack_at": iso_time(stats.last_ack_at_ms),
        "next_seq": stats.next_seq,
        "broker_connected": link.get("connected"),
        "broker": link.get("broker"),
        "collector_online": link.get("collector_online"),
        "link_updated_at": iso_time(link.get("at_ms")),
        # As of link_updated_at: written by the running agent when they change.
        "outbox_fault": health.get("outbox_fault"),
        "unkept_events": health.get("unkept_total", 0),
        "rejected_acks": health.get("rejected_acks", 0),
        "task_crashes": sum(health.get("task_crashes", {}).values()),
    }
    certificates = _certificates(cfg, link.get("certificates", []))
    summary["certificates_expiring"] = sum(1 for c in certificates if c["expiring"])
    announced: dict[str, Any] = link.get("maintenance") or {}
    summary["maintenance_announced_at"] = iso_time(announced.get("ts"))
    windows = [_window(w) for w in announced.get("windows", [])]
    if fmt == "json":
        print(json.dumps({"summary": summary, "targets": targets, "open_incidents": open_incidents,
                          "certificates": certificates, "maintenance_windows": windows}, indent=2))  # fmt: skip
        return EXIT_OK
    print(render([summary], fmt))  # type: ignore[arg-type]
    print()
    print(render(targets, fmt, ["target", "kind", "asset", "state"]))  # type: ignore[arg-type]
    print()
    print(render(open_incidents, fmt, ["incident", "kind", "targets", "severity", "state"]))  # type: ignore[arg-type]
    if certificates:
        print()
        print(render(certificates, fmt, ["role", "subject", "not_after", "days_left", "expiring"]))  # type: ignore[arg-type]
    if windows:
        print()
        print(render(windows, fmt, ["window", "kind", "start", "end", "covers", "reason"]))  # type: ignore[arg-type]
    return EXIT_OK


def _window(w: dict[str, Any]) -> dict[str, Any]:
    """One window of the site's announcement (wire form) as `agent status` shows it."""
    covers = (["whole site"] if w.get("whole_site") else []) + [f"line {x}" for x in w.get("lines", [])]
    covers += [f"class {x}" for x in w.get("asset_classes", [])] + list(w.get("assets", []))
    covers += [f"service {x}" for x in w.get("services", [])]
    return {"window": w["id"], "kind": w["kind"], "start": iso_time(w["start"]), "end": iso_time(w["end"]),
            "covers": ", ".join(covers), "reason": w.get("reason", "")}  # fmt: skip


def _certificates(cfg: AgentConfig, seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Own and CA certificates as the files hold them now; the broker's as the running agent last saw it."""
    from linewarden.certs import CertError, CertInfo, Role
    from linewarden.errors import BrokerError
    from linewarden.mqtt import local_certificates

    tls = cfg.broker.tls
    if tls is None:
        return []
    found: list[CertInfo] = []
    try:
        found = local_certificates(tls)
    except BrokerError as exc:
        print(f"warning: {exc}", file=sys.stderr)
    for record in seen:
        try:
            info = CertInfo.from_dict(record)
        except CertError:
            continue
        if info.role is Role.PEER:
            found.append(info)
    now_ms = int(time.time() * 1000)
    return [
        {"role": c.role.value, "subject": c.subject, "not_after": iso_time(c.not_after_ms),
         "days_left": int(c.days_left(now_ms)), "expiring": c.expires_within(now_ms, tls.expiry_warning_days)}
        for c in found
    ]  # fmt: skip
