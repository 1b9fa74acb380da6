"""`collector contract renewals|show|esign`: the contract's own life and its e-signature evidence."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from collector.audit import local_actor
from collector.esign import evidence_of, import_evidence
from collector.esign_formats import MAX_FILE_BYTES, PLATFORMS, EsignRefused, iso
from collector.lifecycle_view import life, renewals_due
from collector.service import wall_clock_ms
from collector.store import open_store
from linewarden.book import ContractBook
from linewarden.config.collector import CollectorConfig
from linewarden.output import FORMATS, render

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
ACTIONS = ("renewals", "show", "esign")
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
# Command-line option → the file's name in the platform's evidence (collector.esign.FILES).
_EVIDENCE_OPTIONS = {"audit_events": "audit_events", "envelope_json": "envelope", "history": "history",
                     "events": "events"}


def lifecycle_args(sub: Any) -> None:
    """Adds the sub-commands to `collector contract`'s sub-parsers."""
    ren = sub.add_parser("renewals", help="renewals and expiries due in the next N days, with the scorecard trend")
    ren.add_argument("--days", type=int, default=90, help="how far ahead (default 90)")
    ren.add_argument("--format", choices=FORMATS, default="table")
    show = sub.add_parser("show", help="a contract's term, termination rights, escrow checklist and signatures")
    show.add_argument("contract_id")
    show.add_argument("--format", choices=("table", "json"), default="table")
    esign = sub.add_parser("esign", help="import an e-signature platform's evidence of the signed contract")
    esign.add_argument("esign_action", choices=("import",))
    esign.add_argument("contract_id")
    esign.add_argument("--platform", choices=PLATFORMS, required=True)
    esign.add_argument("--document", type=Path, required=True, help="the signed document as the platform gave it")
    esign.add_argument("--audit-events", type=Path, help="docusign: the envelope's audit events (JSON)")
    esign.add_argument("--envelope-json", type=Path,
                       help="docusign: the envelope with its recipients, the certificate of completion's data")
    esign.add_argument("--history", type=Path, help="signnow: the document's history (JSON)")
    esign.add_argument("--events", type=Path, help="adobe_sign: the agreement's audit events (JSON)")
    esign.add_argument("--id", help="the envelope, document or agreement id (needed for adobe_sign)")


def lifecycle(args: argparse.Namespace, config: CollectorConfig, book: ContractBook) -> int:
    if args.action == "esign":
        return _esign(args, config, book)
    store = open_store(config)
    now = wall_clock_ms()
    try:
        if args.action == "renewals":
            if args.days < 0:
                print("error: --days must be 0 or more", file=sys.stderr)
                return EXIT_USAGE
            found = renewals_due(store, book, now, args.days)
            if args.format == "json":
                print(json.dumps([r.as_dict() for r in found], indent=2))
                return EXIT_OK
            rows = [{**{k: v for k, v in r.as_dict().items() if k not in ("trend", "name", "term_number")},
                     "scores": " ".join(f"{m.period}:{m.score}{'*' if m.partial else ''}" for m in r.trend)}
                    for r in found]
            print(render(rows, args.format) if rows else f"no renewal or expiry due in the next {args.days} days")
            return EXIT_OK
        contract = book.contract(args.contract_id)
        shown = {**life(contract, now), "signatures": [e.as_dict() for e in evidence_of(store, args.contract_id)]}
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps(shown, indent=2))
    else:
        _print_life(shown, contract.contract.document_sha256)
    return EXIT_OK


def _print_life(shown: dict[str, Any], document_sha256: str) -> None:
    print(f"== contract {shown['contract']} ({shown['vendor']}), today {shown['today']}")
    term = shown["term"]
    if term is None:
        print("term: not given in the contract file")
    else:
        print(render([{k: v for k, v in term.items() if k not in ("current", "next_decision")}], "table"))
        if term["current"]:
            print(f"current term {term['current']['number']}: {term['current']['start']} to {term['current']['end']}")
        if term["next_decision"]:
            d = term["next_decision"]
            print(f"next decision ({d['kind']}): notice by {d['deadline']}, term ends {d['term_end']}")
    print("\n-- termination")
    ending = shown["termination"]
    print(render([{k: v for k, v in ending.items() if k != "duties"}], "table"))
    for duty in ending["duties"]:
        print(f"  [ ] {duty}")
    print("\n-- escrow")
    print(render(shown["escrow"], "table") if shown["escrow"] else "(none)")
    print(f"\n-- signatures (signed document SHA-256 {document_sha256})")
    if not shown["signatures"]:
        print("(no e-signature evidence imported)")
    for e in shown["signatures"]:
        print(f"{e['platform']} {e['envelope']}: document matches; completed {iso(e['completed_at_ms'])}"
              if e["completed_at_ms"] is not None else f"{e['platform']} {e['envelope']}: document matches")
        print(render([{"signer": s["name"], "email": s["email"], "signed": iso(s["signed_at_ms"]), "ip": s["ip"]}
                      for s in e["signers"]], "table"))


def _read(path: Path, limit: int) -> bytes:
    """A regular file of at most `limit` bytes (a FIFO or a device would never end). Raises EsignRefused."""
    try:
        size = path.stat().st_size
        if not path.is_file() or size > limit:
            raise EsignRefused(f"{path}: not a regular file of at most {limit} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise EsignRefused(f"cannot read {path}: {exc.strerror}") from None


def _esign(args: argparse.Namespace, config: CollectorConfig, book: ContractBook) -> int:
    files: dict[str, bytes] = {}
    try:
        for option, name in _EVIDENCE_OPTIONS.items():
            path = getattr(args, option)
            if path is not None:
                files[name] = _read(path, MAX_FILE_BYTES)
        document = _read(args.document, MAX_DOCUMENT_BYTES)
    except EsignRefused as exc:
        print(f"error: evidence not imported: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    store = open_store(config)
    actor, origin = local_actor()
    try:
        record, added = import_evidence(store, book, config.collector.data_dir, args.contract_id, args.platform,
                                        files, document, args.id, actor, origin, wall_clock_ms())
    except EsignRefused as exc:
        print(f"error: evidence not imported: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    finally:
        store.close()
    said = "imported" if added else "already imported"
    print(f"{said}: {record.platform} {record.envelope} for contract {record.contract_id}; the signed document "
          f"matches its SHA-256; {len(record.signers)} signer(s)")
    print(render([{"signer": s["name"], "email": s["email"], "signed": iso(s["signed_at_ms"]), "ip": s["ip"]}
                  for s in record.signers], "table"))
    return EXIT_OK
