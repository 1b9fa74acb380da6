"""Collector sub-commands about contracts: `report`, `contract verify`, `maintenance add|list|cancel`."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from collector.audit import append_entry, append_if_changed, local_actor
from collector.audit_evidence import latest_checkpoint
from collector.cli_lifecycle import ACTIONS as LIFECYCLE_ACTIONS
from collector.cli_lifecycle import lifecycle, lifecycle_args
from collector.contracts import record_contracts
from collector.exports import TABLES, csv_tables
from collector.maintenance import (
    FAR_FUTURE_MS,
    announcement,
    announcement_topics,
    publish_announcement,
    record_window,
    stamp,
)
from collector.reporting import iter_sections, parse_as_of, period_note, reports, with_checkpoint
from collector.store import open_store
from collector.store.rows import MaintenanceWindowRow
from linewarden.book import load_book
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from linewarden.domain import Criticality
from linewarden.errors import ConfigError, LinewardenError, MaintenanceRefused, WireError
from linewarden.output import FORMATS, iso_time, render
from linewarden.sla.report import ContractReport
from linewarden.timeutil import dt_to_ms
from linewarden.wire import MAX_MS, MaintenanceWindowWire, build, is_valid_id

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _now_ms() -> int:
    return dt_to_ms(datetime.now().astimezone())


# ---------------------------------------------------------------- report


def report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--period", required=True, help="the month, YYYY-MM (in each contract's time zone)")
    p.add_argument("--contract", help="only this contract id")
    p.add_argument("--as-of", metavar="TIME",
                   help="compute the report as known at TIME (ISO 8601 with its zone, e.g. 2026-12-10T12:00+01:00); "
                   "default: now for a month not over yet, else the month's end")  # fmt: skip
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--table", choices=tuple(TABLES), help="with --format csv: only this table, as one proper CSV")


def report(args: argparse.Namespace) -> int:
    if not _MONTH.match(args.period):
        print(f"error: --period {args.period!r}: use YYYY-MM", file=sys.stderr)
        return EXIT_USAGE
    if args.table is not None and args.format != "csv":
        print("error: --table goes with --format csv", file=sys.stderr)
        return EXIT_USAGE
    try:
        as_of_ms = None if args.as_of is None else parse_as_of(args.as_of)
    except ValueError as exc:
        print(f"error: --as-of: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = load(CollectorConfig, args.config)
    book = load_book(config, args.config)
    store = open_store(config)
    try:
        now = _now_ms()
        try:
            found = reports(store, book, args.period, args.contract, as_of_ms=as_of_ms, now_ms=now)
        except ValueError as exc:
            print(f"error: --as-of: {exc}", file=sys.stderr)
            return EXIT_USAGE
        actor, origin = local_actor()
        record_contracts(store, book, now, actor, origin)
        with store.transaction() as tx:
            for r in found:
                if r.partial:  # provisional figures: the audit log keeps those of whole periods
                    continue
                obj = f"credits/{r.contract_id}/{r.period.label}"
                append_if_changed(tx.sql, actor, origin, "credits.reported", obj, _credit_details(r), now)
    finally:
        store.close()
    checkpoint = latest_checkpoint(config.checkpoint_file)
    if args.format == "json":
        print(json.dumps([with_checkpoint(r, checkpoint) for r in found], indent=2, ensure_ascii=False))
        return EXIT_OK
    if args.table is not None:
        sys.stdout.write(csv_tables(found, checkpoint)[args.table])
        return EXIT_OK
    for report_ in found:

        def fmt_time(ms: int | None, tz: str = report_.timezone) -> str | None:
            return iso_time(ms, tz)

        if args.format == "table":
            print(
                f"== {report_.contract_id} ({report_.vendor}) {report_.period.label}, {report_.timezone}, "
                f"fee {report_.fee:.2f} {report_.currency}: {period_note(report_, fmt_time)}"
            )
        for name, rows in iter_sections(report_, fmt_time, checkpoint):
            if args.format == "csv":
                print(f"# {name}")
                print(render(rows, "csv") if rows else "")
                continue
            print(f"\n-- {name}")
            print(render(rows, "table") if rows else "(none)")
        print()
    return EXIT_OK


def _credit_details(report_: ContractReport) -> dict[str, Any]:
    """What the audit log keeps of a report's credits: a new entry only when these figures change."""
    cr = report_.credits
    return {
        "currency": report_.currency,
        "total": str(cr.total),
        "subtotal": str(cr.subtotal),
        "cap": str(cr.cap),
        "capped": cr.capped,
        "lines": [{"kind": c.kind, "ref": c.ref, "detail": c.detail, "amount": str(c.amount)} for c in cr.lines],
    }


# ---------------------------------------------------------------- contract verify


def contract_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    verify = sub.add_parser("verify", help="check a signed contract document against the contract's SHA-256")
    verify.add_argument("contract_id")
    verify.add_argument("document", type=Path)
    lst = sub.add_parser("list", help="list the contracts the collector config names")
    lst.add_argument("--format", choices=FORMATS, default="table")
    lifecycle_args(sub)


def contract(args: argparse.Namespace) -> int:
    config = load(CollectorConfig, args.config)
    book = load_book(config, args.config)
    if args.action in LIFECYCLE_ACTIONS:
        return lifecycle(args, config, book)
    if args.action == "list":
        rows = [
            {
                "contract": c.contract.id,
                "vendor": c.contract.vendor,
                "tier": c.support.tier,
                "coverage": c.support.coverage,
                "fee": f"{c.contract.fee_per_period:.2f} {c.contract.currency}",
                "sink": c.ticketing.kind if c.ticketing else None,
            }
            for c in book.contracts.values()
        ]
        print(render(rows, args.format))
        return EXIT_OK
    expected = book.contract(args.contract_id).contract.document_sha256
    try:
        digest = hashlib.sha256(args.document.read_bytes()).hexdigest()
    except OSError as exc:
        print(f"error: cannot read {args.document}: {exc.strerror}", file=sys.stderr)
        return EXIT_RUNTIME
    if digest != expected:
        print(f"MISMATCH: {args.document} has SHA-256 {digest}; contract {args.contract_id} says {expected}")
        return EXIT_RUNTIME
    print(f"ok: {args.document} is the signed document of contract {args.contract_id} (SHA-256 {digest})")
    return EXIT_OK


# ---------------------------------------------------------------- maintenance


def _time(text: str, tz: str) -> int:
    """ISO 8601; without an offset it is local time in the collector's time zone."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError("command line", "time", f"not an ISO 8601 time: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(tz))
    ms = dt_to_ms(dt)
    if not 0 <= ms <= MAX_MS:  # what the wire carries
        raise ConfigError("command line", "time", f"{text!r} is outside 1970 to 9999 (UTC)")
    return ms


def maintenance_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="record a maintenance or change window and publish it to the site")
    add.add_argument("--site", required=True)
    add.add_argument("--start", required=True, help="ISO 8601, e.g. 2026-12-05T06:00 (collector time zone)")
    add.add_argument("--end", required=True)
    add.add_argument("--asset", action="append", default=[], dest="assets")
    add.add_argument("--service", action="append", default=[], dest="services")
    add.add_argument("--line", action="append", default=[], dest="lines",
                     help="an agent id: every asset that agent watches (repeatable)")  # fmt: skip
    add.add_argument("--asset-class", action="append", default=[], dest="asset_classes",
                     choices=[c.value for c in Criticality], help="every asset of the site of that criticality")
    add.add_argument("--whole-site", action="store_true", help="every asset of the site")
    add.add_argument("--by", required=True, help="who announced it (vendor contact or plant person)")
    add.add_argument("--announced-at",
                     help="back-dating: when it was announced, if before now (ISO 8601); needs --admin and"
                          " --backdate-reason (default: now, when the collector records it)")  # fmt: skip
    add.add_argument("--admin", action="store_true", help="act as the collector's administrator (to back-date)")
    add.add_argument("--backdate-reason", default="", help="why the announcement is recorded late")
    add.add_argument("--kind", choices=["maintenance", "change"], default="maintenance")
    add.add_argument("--reason", default="", help="what the window is for")
    add.add_argument("--id", help="window id (default: generated)")
    add.add_argument("--no-publish", action="store_true", help="record only; do not publish to the broker")
    lst = sub.add_parser("list", help="windows in force or upcoming")
    lst.add_argument("--site")
    lst.add_argument("--all", action="store_true", help="include past and cancelled windows")
    lst.add_argument("--format", choices=FORMATS, default="table")
    cancel = sub.add_parser("cancel", help="cancel a window")
    cancel.add_argument("window_id")
    cancel.add_argument("--no-publish", action="store_true")


def maintenance(args: argparse.Namespace) -> int:
    config = load(CollectorConfig, args.config)
    store = open_store(config)
    tz = config.collector.timezone
    now = _now_ms()
    try:
        if args.action == "list":
            rows = store.maintenance_windows(0 if args.all else now, FAR_FUTURE_MS)
            rows = [w for w in rows if (args.site is None or w.site == args.site)]
            if not args.all:
                rows = [w for w in rows if w.cancelled_at is None]
            print(render([_row(w, tz) for w in rows], args.format))
            return EXIT_OK
        if args.action == "add":
            site = args.site
            if not is_valid_id(site):
                raise ConfigError("command line", "--site", f"not a site id: {site!r}")
            try:
                announced_at, backdate_reason = stamp(
                    _time(args.announced_at, tz) if args.announced_at else None, now, admin=args.admin,
                    reason=args.backdate_reason,
                )
                window = build(MaintenanceWindowWire, {
                    "id": args.id or f"mw-{uuid.uuid4().hex[:12]}", "kind": args.kind, "start": _time(args.start, tz),
                    "end": _time(args.end, tz), "assets": args.assets, "services": args.services,
                    "whole_site": args.whole_site, "lines": args.lines, "asset_classes": args.asset_classes,
                    "announced_at": announced_at, "announced_by": args.by, "reason": args.reason,
                    "back_dated": bool(backdate_reason),
                })  # fmt: skip
                if window.end <= window.start:
                    raise MaintenanceRefused("the window ends before it starts")
                actor, origin = local_actor()
                unmatched = record_window(store, load_book(config, args.config), site, window, now,
                                          backdate_reason, actor, origin)  # fmt: skip
            except WireError as exc:
                print(f"error: window not recorded: {exc}", file=sys.stderr)
                return EXIT_USAGE
            except MaintenanceRefused as exc:
                print(f"error: window not recorded: {exc}", file=sys.stderr)
                return EXIT_USAGE
            for name in unmatched:
                print(f"warning: {name}: covers nothing", file=sys.stderr)
            flag = " (back-dated)" if backdate_reason else ""
            print(f"recorded {window.kind} window {window.id} for {site}{flag}")
        else:
            found = [w for w in store.maintenance_windows(0, FAR_FUTURE_MS) if w.id == args.window_id]
            if not found:
                print(f"error: no window {args.window_id}", file=sys.stderr)
                return EXIT_RUNTIME
            actor, origin = local_actor()
            with store.transaction() as tx:
                if tx.cancel_maintenance_window(args.window_id, now):
                    append_entry(tx.sql, actor, origin, "maintenance.cancelled", f"window/{args.window_id}",
                                 {"site": found[0].site}, now)  # fmt: skip
            site = found[0].site
            print(f"cancelled window {args.window_id}")
        if args.no_publish:
            return EXIT_OK
        ann = announcement(store, site, now)
        topics = announcement_topics(store, site)
    finally:
        store.close()
    try:
        asyncio.run(publish_announcement(config.broker, ann, topics))
    except LinewardenError as exc:
        print(f"warning: recorded, but not published: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    print(f"published {len(ann.windows)} window(s) on the {site} maintenance topic and to {len(topics) - 1} agent(s)")
    return EXIT_OK


def _selectors(w: MaintenanceWindowRow) -> list[str]:
    return (["whole site"] if w.whole_site else []) + [f"line {x}" for x in w.lines] + [
        f"class {x}" for x in w.asset_classes
    ]


def _row(w: MaintenanceWindowRow, tz: str) -> dict[str, Any]:
    def t(ms: int | None) -> str | None:
        return iso_time(ms, tz)

    return {
        "id": w.id,
        "site": w.site,
        "kind": w.kind,
        "start": t(w.start_at),
        "end": t(w.end_at),
        "assets": list(w.assets),
        "services": list(w.services),
        "announced": t(w.announced_at),
        "by": w.announced_by,
        "selects": _selectors(w),
        "back_dated": w.backdate_reason if w.back_dated else "",
        "notice_h": round((w.start_at - w.announced_at) / 3_600_000, 1),
        "cancelled": t(w.cancelled_at),
    }



