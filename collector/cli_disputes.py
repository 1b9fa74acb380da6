"""Collector sub-commands of plant IT about disputes and exports:
`dispute list|show|settle` and `review` (the monthly vendor review as PDF, a report table as CSV, or all
tables as a zip)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from collector.audit import local_actor
from collector.audit_evidence import latest_checkpoint
from collector.disputes import DisputeError, DisputeRefused, evidence_path, get_dispute, list_disputes, settle_dispute
from collector.exports import TABLES, monthly_review_pdf, report_csv_tables, tables_zip
from collector.reporting import parse_as_of
from collector.service import wall_clock_ms
from collector.store import open_store
from linewarden.book import load_book
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from linewarden.output import FORMATS, render
from linewarden.timeutil import ms_to_dt

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_COLUMNS = ("id", "incident_id", "contract_id", "vendor", "field", "state", "disputed_value", "proposed_value",
            "outcome", "settled_value", "opened_at", "settled_at")  # fmt: skip


def _iso(ms: object) -> object:
    return ms_to_dt(ms).isoformat().replace("+00:00", "Z") if isinstance(ms, int) and not isinstance(ms, bool) else ms


# ---------------------------------------------------------------- dispute


def dispute_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    lst = sub.add_parser("list", help="disputes, oldest first")
    lst.add_argument("--state", choices=("open", "settled"))
    lst.add_argument("--contract")
    lst.add_argument("--vendor")
    lst.add_argument("--format", choices=FORMATS, default="table")
    show = sub.add_parser("show", help="one dispute: values, reasons, links and evidence files")
    show.add_argument("dispute_id")
    settle = sub.add_parser("settle", help="accept, amend or reject a dispute, with plant IT's reason")
    settle.add_argument("dispute_id")
    settle.add_argument("--outcome", required=True, choices=("accepted", "amended", "rejected"))
    settle.add_argument("--reason", required=True, help="why (kept in the dispute and the audit log)")
    settle.add_argument("--value", help="amended: the settled value (a time as ISO 8601 with its zone, S1-S4, "
                                        "true/false for excluded, text for cause)")  # fmt: skip


def _settled_value(field: str, text: str | None) -> object:
    if text is not None and field == "excluded":
        return {"true": True, "false": False}.get(text.lower(), text)
    return text


def dispute(args: argparse.Namespace) -> int:
    config = load(CollectorConfig, args.config)
    store = open_store(config)
    try:
        if args.action == "list":
            found = list_disputes(store, args.vendor, args.contract, None, args.state)
            rows = [{k: _iso(v) if k.endswith(("_at", "_value")) else v for k, v in d.as_dict().items()}
                    for d in found]  # fmt: skip
            print(render(rows, args.format, columns=_COLUMNS))
            return EXIT_OK
        current = get_dispute(store, args.dispute_id)
        if current is None:
            print(f"error: no dispute {args.dispute_id}", file=sys.stderr)
            return EXIT_RUNTIME
        if args.action == "show":
            shown = {k: _iso(v) if k.endswith(("_at", "_value")) else v for k, v in current.as_dict().items()}
            folder = config.collector.data_dir / "evidence"
            shown["evidence"] = [
                {**e.__dict__, "file": str(evidence_path(folder, current, e.sha256) or "(missing)")}
                for e in current.evidence
            ]
            print(json.dumps(shown, indent=2, ensure_ascii=False))
            return EXIT_OK
        actor, origin = local_actor()
        try:
            value = _settled_value(current.field, args.value)
            done = settle_dispute(store, args.dispute_id, args.outcome, args.reason, value, actor, origin,
                                  wall_clock_ms())  # fmt: skip
        except DisputeRefused as exc:
            print(f"error: --value: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except DisputeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_RUNTIME
        print(f"dispute {done.id} {done.outcome}: {done.field} of {done.incident_id} is "
              f"{_iso(done.settled_value if done.outcome != 'rejected' else done.disputed_value)}")  # fmt: skip
        return EXIT_OK
    finally:
        store.close()


# ---------------------------------------------------------------- review


def review_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--period", required=True, help="the month, YYYY-MM")
    p.add_argument("--contract", help="the contract (needed for a PDF when there are several)")
    p.add_argument("--as-of", metavar="TIME", help="as known at TIME (ISO 8601 with its zone)")
    p.add_argument("--format", choices=("pdf", "csv", "zip"), default="pdf",
                   help="pdf: the monthly vendor review; csv: one table (--table); zip: every table as CSV")
    p.add_argument("--table", choices=tuple(TABLES), help="csv: the table")
    p.add_argument("--output", required=True, type=Path, help="the file to write; '-' for standard output")


def review(args: argparse.Namespace) -> int:
    if not _MONTH.match(args.period):
        print(f"error: --period {args.period!r}: use YYYY-MM", file=sys.stderr)
        return EXIT_USAGE
    if (args.format == "csv") != (args.table is not None):
        print("error: --table goes with --format csv, and csv needs it", file=sys.stderr)
        return EXIT_USAGE
    try:
        as_of_ms = None if args.as_of is None else parse_as_of(args.as_of)
    except ValueError as exc:
        print(f"error: --as-of: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = load(CollectorConfig, args.config)
    book = load_book(config, args.config)
    contract = args.contract
    if args.format == "pdf" and contract is None:
        if len(book.contracts) != 1:
            print("error: --contract: one of " + ", ".join(sorted(book.contracts)), file=sys.stderr)
            return EXIT_USAGE
        contract = next(iter(book.contracts))
    store = open_store(config)
    try:
        now = wall_clock_ms()
        try:
            checkpoint = latest_checkpoint(config.checkpoint_file)
            if args.format == "pdf":
                data = monthly_review_pdf(store, book, args.period, contract, as_of_ms, now, checkpoint=checkpoint)
            else:
                tables = report_csv_tables(store, book, args.period, contract, as_of_ms, now, checkpoint=checkpoint)
                data = tables[args.table].encode("utf-8") if args.format == "csv" else tables_zip(tables)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    finally:
        store.close()
    if str(args.output) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return EXIT_OK
    try:
        args.output.write_bytes(data)
    except OSError as exc:
        print(f"error: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return EXIT_RUNTIME
    print(f"wrote {args.output} ({len(data)} bytes)")
    return EXIT_OK
