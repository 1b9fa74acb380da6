"""`linewarden collector …`: run the collector, import and export history, list agents.

Each sub-command is one entry in `_COMMANDS`: a function that adds its arguments and one that runs it.
Commands owned elsewhere (`report`, `maintenance`, `contract verify`, `token`, `audit`) join by adding
their entry there. Exit codes: 0 ok, 1 runtime failure (or lines skipped by an import), 2 usage or config.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import stat
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from collector import certificates, liveness, retention
from collector.archive_import import ArchiveRefused, import_archive, is_archive
from collector.audit_cli import audit, audit_args
from collector.cli_changes import change, change_args, remote_access, remote_access_args
from collector.cli_contracts import contract, contract_args, maintenance, maintenance_args, report, report_args
from collector.cli_disputes import dispute, dispute_args, review, review_args
from collector.console.cli import user, user_args
from collector.console.totp_vault import TotpVault, open_vault
from collector.exporter import export_archive
from collector.importer import import_file
from collector.service import CollectorService, wall_clock_ms
from collector.store import Store, open_store
from collector.tokens import ROLES, SCOPES, create_token, list_tokens, revoke_token, rotate_token
from linewarden.book import ContractBook, load_book
from linewarden.cli_options import resolve, share
from linewarden.config.base import MAX_DURATION
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from linewarden.errors import ConfigError, LinewardenError, StoreError
from linewarden.logs import setup_logging
from linewarden.output import FORMATS, iso_time, render
from linewarden.supervise import SupervisorGaveUp
from linewarden.timeutil import parse_duration

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("collector")


def _open(args: argparse.Namespace) -> tuple[CollectorConfig, Store]:
    config = load(CollectorConfig, args.config)
    return config, open_store(config)


# ---------------------------------------------------------------- run


def _run_args(p: argparse.ArgumentParser) -> None:
    """`run` takes only the shared options (--config, --log-level, --log-format)."""


def _run(args: argparse.Namespace) -> int:
    config = load(CollectorConfig, args.config)
    setup_logging(args.log_level or config.collector.log_level, args.log_format or config.collector.log_format)
    store = open_store(config)
    try:
        book = load_book(config, args.config)
        vault = open_vault(store, config.totp_key_file, str(args.config)) if config.console.enabled else None
        asyncio.run(_serve(config, store, book, vault))
    except SupervisorGaveUp as exc:  # logged with its tracebacks; exit for the service manager to restart us
        log.critical("collector stopping: %s", exc)
        return EXIT_RUNTIME
    finally:
        store.close()
    return EXIT_OK


async def _serve(config: CollectorConfig, store: Store, book: ContractBook, vault: TotpVault | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl+C arrives as KeyboardInterrupt
            loop.add_signal_handler(sig, stop.set)
    log.info("collector %s starting; broker %s", config.collector.id, config.broker.shown())
    await CollectorService(config, store, book=book, serve_api=True, totp_vault=vault).run(stop)


# ---------------------------------------------------------------- import


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="JSON Lines: wire events with site and agent, and collector records; "
                   "or an archive of `collector export` (into a fresh store)")


def _import(args: argparse.Namespace) -> int:
    config = load(CollectorConfig, args.config)
    try:
        if not stat.S_ISREG(args.file.stat().st_mode):  # a FIFO blocks when opened, /dev/zero never ends
            print(f"error: cannot read {args.file}: not a regular file", file=sys.stderr)
            return EXIT_RUNTIME
        archive = is_archive(args.file)
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_RUNTIME
    if archive:
        try:
            done = import_archive(config, args.file, wall_clock_ms())
        except ArchiveRefused as exc:
            print(f"error: archive not imported: {exc}", file=sys.stderr)
            return EXIT_RUNTIME
        except OSError as exc:
            print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return EXIT_RUNTIME
        print(f"imported {done.rows} rows of {done.tables} tables and {done.files} files; contract and calendar "
              f"files and the signed checkpoints are in {done.imported_dir}")
        return EXIT_OK
    store = open_store(config)
    try:
        result = import_file(store, args.file, wall_clock_ms(), load_book(config, args.config))
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_RUNTIME
    finally:
        store.close()
    for bad in result.bad:
        print(f"{args.file}:{bad.number}: skipped: {bad.reason}", file=sys.stderr)
    print(f"imported {result.imported}, already present {result.duplicates}, skipped {len(result.bad)}")
    return EXIT_RUNTIME if result.bad else EXIT_OK


# ---------------------------------------------------------------- export


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="the archive to write (zip; `collector import` reads it)")
    p.add_argument("--csv", action="store_true", help="also put every table in as CSV (csv/<table>.csv)")


def _export(args: argparse.Namespace) -> int:
    config, store = _open(args)
    try:
        manifest = export_archive(store, config, args.config, args.out, wall_clock_ms(), with_csv=args.csv)
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return EXIT_RUNTIME
    finally:
        store.close()
    print(render([{"table": t, "rows": d["rows"]} for t, d in manifest["tables"].items()], "table"))
    files = sum(1 for m in manifest["members"] if m["kind"] not in ("table", "csv"))
    print(f"wrote {args.out}: {len(manifest['tables'])} tables, {files} files, {manifest['audit']['entries']} "
          "audit entries")
    return EXIT_OK


# ---------------------------------------------------------------- agents


def _agents_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="table")


def _agents(args: argparse.Namespace) -> int:
    config, store = _open(args)
    try:
        now = wall_clock_ms()
        open_gaps = {(g.site, g.agent): g for g in store.open_gaps()}
        dead = store.dead_letter_counts()
        held = store.held_counts()
        rows = []
        for a in store.agents():
            gap = open_gaps.get((a.site, a.agent))
            state = liveness.status(a, gap, now, config.liveness.missed_heartbeats, watching_since=0)
            # Alive but unable to keep what it measures: its events wait in its memory.
            shown = "degraded" if state == liveness.Liveness.ALIVE and a.outbox_fault else state.value
            age = liveness.oldest_unacked_age_ms(a)
            rows.append(
                {
                    "site": a.site,
                    "agent": a.agent,
                    "version": a.version,
                    "epoch": a.epoch,
                    "last_seen": iso_time(a.last_seen),
                    "last_heartbeat": iso_time(a.last_heartbeat),
                    "liveness": shown,
                    "gap_since": iso_time(gap.start_at) if gap else None,
                    "skew_ms": a.skew_ms,
                    "skew_flagged": a.skew_flagged,
                    "dead_letters": dead.get((a.site, a.agent), 0),
                    "held_batches": held.get((a.site, a.agent), 0),  # of a boot not yet born
                    "outbox_fault": a.outbox_fault,
                    "outbox_depth": a.outbox_depth,
                    "oldest_unacked_at": iso_time(a.oldest_unacked_at),
                    "oldest_unacked_age_s": None if age is None else age // 1000,
                    "cert_expiring": certificates.summary(
                        certificates.agent_expiring(store, a.site, a.agent, a.epoch), now
                    ),
                }
            )
    finally:
        store.close()
    print(render(rows, args.format, columns=_AGENT_COLUMNS))
    for line in certificates.own_expiring(config, now):
        print(f"warning: {line}", file=sys.stderr)
    return EXIT_OK


_AGENT_COLUMNS = (
    "site",
    "agent",
    "version",
    "epoch",
    "last_seen",
    "last_heartbeat",
    "liveness",
    "gap_since",
    "skew_ms",
    "skew_flagged",
    "dead_letters",
    "outbox_fault",
    "outbox_depth",
    "oldest_unacked_at",
    "oldest_unacked_age_s",
    "cert_expiring",
)

# ---------------------------------------------------------------- token


def _lifetime(text: str) -> timedelta:
    """A token's lifetime: a duration longer than zero and at most 100 years (its expiry must be a date)."""
    found = parse_duration(text)
    if not timedelta(0) < found <= MAX_DURATION:
        raise argparse.ArgumentTypeError(f"{text!r}: give a lifetime longer than zero and at most 100 years")
    return found


def _token_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="create a token; it is printed once")
    create.add_argument("--role", choices=ROLES, required=True, help="vendor, plant or admin")
    create.add_argument("--vendor", help="the vendor a vendor token is for")
    create.add_argument("--label", default="", help="who or what uses it")
    create.add_argument("--expires-in", type=_lifetime, help="lifetime, e.g. 90d (default: none)")
    create.add_argument("--scope", action="append", choices=SCOPES, default=[],
                        help="limit the token to this scope (repeatable; default: all its role allows)")
    lst = sub.add_parser("list", help="list tokens (ids, never the tokens)")
    lst.add_argument("--format", choices=FORMATS, default="table")
    revoke = sub.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("id", help="the token to revoke")
    rotate = sub.add_parser("rotate", help="a new token like this one (printed once); this one is revoked")
    rotate.add_argument("id", help="the token to replace")


def _token(args: argparse.Namespace) -> int:
    _, store = _open(args)
    actor, origin = "cli", socket.gethostname()
    try:
        if args.action in ("create", "rotate"):
            if args.action == "create":
                lifetime = None if args.expires_in is None else int(args.expires_in.total_seconds() * 1000)
                token, info = create_token(store, args.role, args.vendor, args.label, wall_clock_ms(), actor, origin,
                                           lifetime, tuple(args.scope) or SCOPES)
            else:
                token, info = rotate_token(store, args.id, wall_clock_ms(), actor, origin)
            print(f"token {info.id} ({info.role}{' ' + info.vendor if info.vendor else ''}); shown only now:")
            print(token)
        elif args.action == "list":
            rows = [
                {"id": t.id, "role": t.role, "vendor": t.vendor, "label": t.label, "scopes": ",".join(t.scopes),
                 "created": iso_time(t.created_at), "expires": iso_time(t.expires_at),
                 "revoked": iso_time(t.revoked_at)}
                for t in list_tokens(store)
            ]
            print(render(rows, args.format,
                         columns=("id", "role", "vendor", "label", "scopes", "created", "expires", "revoked")))
        elif not revoke_token(store, args.id, wall_clock_ms(), actor, origin):
            print(f"error: no live token {args.id}", file=sys.stderr)
            return EXIT_RUNTIME
    finally:
        store.close()
    return EXIT_OK


# ---------------------------------------------------------------- prune


def _prune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="count what would be removed; change nothing")


def _prune(args: argparse.Namespace) -> int:
    config, store = _open(args)
    try:
        result = retention.prune(store, config, wall_clock_ms(), dry_run=args.dry_run)
    except OSError as exc:
        print(f"error: cannot write the archive in {retention.archive_dir(config)}: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    finally:
        store.close()
    h = result.horizons
    print(f"raw rows measured before {iso_time(h.raw)}, records ended before {iso_time(h.records)}:")
    for table, n in result.removed.items():
        print(f"  {table}: {n} {'to remove' if args.dry_run else 'removed'}")
    if not args.dry_run:
        print(f"rollup rows written: {result.rollups}; archive: {result.archive or 'none (nothing removed)'}")
    return EXIT_OK


# name -> (help, add arguments, run). Add `report`, `maintenance`, `contract`, `token`, `audit` here.
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "run": ("run the collector: ingest from agents over MQTT", _run_args, _run),
    "import": ("import history from a JSON Lines file (idempotent)", _import_args, _import),
    "export": ("export everything into one archive that `import` reads back", _export_args, _export),
    "agents": ("list agents: last seen, liveness, clock skew, dead letters, outbox", _agents_args, _agents),
    "report": ("SLA report per contract for a month: uptime, incidents, credits, scorecard", report_args, report),
    "contract": ("list contracts; verify a signed document against its SHA-256", contract_args, contract),
    "maintenance": ("record, list and cancel maintenance windows (published to the site)", maintenance_args,
                    maintenance),
    "token": ("create, list and revoke API tokens (vendor, plant, admin)", _token_args, _token),
    "audit": ("verify the audit log against its signed checkpoints, export it, checkpoint it, make its key",
              audit_args, audit),
    "dispute": ("list, show and settle vendors' disputes of incidents", dispute_args, dispute),
    "review": ("the monthly vendor review as PDF, or the report's tables as CSV", review_args, review),
    "user": ("add, list, disable console users and change their passwords", user_args, user),
    "change": ("approve change windows with their change (CAB) reference; observed versions", change_args, change),
    "remote-access": ("import and list vendor remote sessions (jump host, VPN)", remote_access_args,
                      remote_access),
    "prune": ("remove what is past its retention (archived to a file first); --dry-run counts it", _prune_args,
              _prune),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linewarden collector", description="the linewarden collector")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_args, _) in _COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    share(parser, "collector config (TOML)")
    return parser


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = resolve(parser, parser.parse_args(argv))
    try:
        return _COMMANDS[args.command][2](args)
    except (StoreError, LinewardenError) as exc:
        if isinstance(exc, ConfigError):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
