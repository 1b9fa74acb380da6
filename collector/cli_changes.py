"""`collector change …` (plant IT's approvals of change windows, observed versions) and
`collector remote-access …` (import and list vendor remote sessions)."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

from collector import change_records
from collector.audit import local_actor
from collector.remote_access.records import import_jsonl, sessions
from collector.store import open_store
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from linewarden.output import FORMATS, iso_time, render

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def change_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    approve = sub.add_parser("approve", help="approve a change window with its change (CAB) reference")
    approve.add_argument("window_id")
    approve.add_argument("--ref", required=True, help="the change record, e.g. CAB-2026-114")
    approve.add_argument("--note", default="")
    revoke = sub.add_parser("revoke", help="revoke a change window's approval")
    revoke.add_argument("window_id")
    lst = sub.add_parser("list", help="approvals of change windows")
    lst.add_argument("--format", choices=FORMATS, default="table")
    versions = sub.add_parser("versions", help="the latest version of each kind observed on an asset")
    versions.add_argument("asset")
    versions.add_argument("--format", choices=FORMATS, default="table")


def change(args: argparse.Namespace) -> int:
    config = load(CollectorConfig, args.config)
    store = open_store(config)
    tz = config.collector.timezone
    try:
        if args.action == "approve":
            actor, origin = local_actor()
            try:
                a = change_records.approve(store, args.window_id, args.ref, args.note, actor, origin, _now_ms())
            except change_records.ApprovalRefused as exc:
                print(f"error: not approved: {exc}", file=sys.stderr)
                return EXIT_USAGE
            print(f"approved change window {a.window_id} ({a.change_ref})")
        elif args.action == "revoke":
            actor, origin = local_actor()
            if not change_records.revoke(store, args.window_id, actor, origin, _now_ms()):
                print(f"error: window {args.window_id} has no live approval", file=sys.stderr)
                return EXIT_RUNTIME
            print(f"revoked the approval of window {args.window_id}")
        elif args.action == "list":
            rows = [
                {**asdict(a), "approved_at": iso_time(a.approved_at, tz), "revoked_at": iso_time(a.revoked_at, tz)}
                for a in change_records.approvals(store).values()
            ]
            print(render(rows, args.format))
        else:
            seen = change_records.latest_versions(store, args.asset)
            print(render([{"what": v.what, "version": v.version, "since": iso_time(v.at_ms, tz)} for v in seen],
                         args.format))  # fmt: skip
    finally:
        store.close()
    return EXIT_OK


def remote_access_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    imp = sub.add_parser("import", help="record the sessions of a JSON Lines file (one session record a line)")
    imp.add_argument("file", type=Path)
    lst = sub.add_parser("list", help="sessions as received")
    lst.add_argument("--format", choices=FORMATS, default="table")


def remote_access(args: argparse.Namespace) -> int:
    config = load(CollectorConfig, args.config)
    store = open_store(config)
    tz = config.collector.timezone
    try:
        if args.action == "import":
            try:
                stream = args.file.open("rb")
            except OSError as exc:
                print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
                return EXIT_USAGE
            with stream:
                done = import_jsonl(store, stream, args.file.name, config.remote_access.max_message_bytes, _now_ms())
            print(f"recorded {done.sessions} session record(s); {done.skipped} line(s) skipped (dead-lettered)")
            return EXIT_RUNTIME if done.skipped else EXIT_OK
        rows = [
            {"gateway": s.gateway, "id": s.id, "user": s.user, "source": s.source, "asset": s.asset,
             "start": iso_time(s.start_ms, tz), "end": iso_time(s.end_ms, tz)}
            for s in sessions(store, 0, 2**62)
        ]
        print(render(rows, args.format))
    finally:
        store.close()
    return EXIT_OK
