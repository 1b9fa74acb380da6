"""`linewarden collector audit keygen|checkpoint|verify|export` and `linewarden audit verify-export`.

`verify-export` needs neither a database nor a config: an exported log and the collector's public key.
Exit codes: 0 intact / done, 1 tampering found or a runtime failure, 2 usage.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from collector.audit import AuditLog
from collector.audit_evidence import (
    Checkpoint,
    Checkpointer,
    EvidenceError,
    checkpointer_for,
    entry_dicts,
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
    public_key_path,
    read_anchors,
    read_checkpoints,
    verify_entries,
    verify_log,
)
from collector.store import open_store
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
ACTIONS = ("verify", "export", "checkpoint", "keygen")


def audit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS, help="verify the log (against the signed checkpoints), export it, "
                   "write a signed checkpoint now, or create the signing key")
    p.add_argument("--out", type=Path, help="export: the JSON Lines file; keygen: the key file (default: config)")
    p.add_argument("--checkpoints", type=Path, help="verify: a checkpoint file (default: the collector's)")
    p.add_argument("--public-key", type=Path, help="verify: the public key (default: from the signing key)")


def audit(args: argparse.Namespace) -> int:
    config = load(CollectorConfig, args.config)
    try:
        if args.action == "keygen":
            return _keygen(config, args.out)
        if args.action == "export" and args.out is None:
            print("error: audit export needs --out FILE", file=sys.stderr)
            return EXIT_USAGE
        store = open_store(config)
        try:
            log_ = AuditLog(store)
            if args.action == "verify":
                return _verify(config, log_, args.checkpoints, args.public_key)
            checkpointer = checkpointer_for(config)
            if args.action == "checkpoint":
                if checkpointer is None:
                    print("error: no [audit] signing_key in the config (create one: audit keygen)", file=sys.stderr)
                    return EXIT_USAGE
                cp = checkpointer.checkpoint(log_, _now_ms())
                assert cp is not None
                print(f"checkpoint: {cp.count} entries, head {cp.head}, written to {checkpointer.path}")
                return EXIT_OK
            return _export(config, log_, checkpointer, args.out)
        finally:
            store.close()
    except EvidenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _keygen(config: CollectorConfig, out: Path | None) -> int:
    path = out or config.audit.signing_key
    if path is None:
        print("error: give --out KEYFILE or set [audit] signing_key", file=sys.stderr)
        return EXIT_USAGE
    public = generate_key(path)
    print(f"signing key {path} (keep it off the database host's backups, mode 0600)")
    print(f"public key {public_key_path(path)} (key id {key_id(public)}): hand it to vendors and auditors")
    return EXIT_OK


def _verify(config: CollectorConfig, log_: AuditLog, checkpoints: Path | None, public_path: Path | None) -> int:
    found = read_checkpoints(checkpoints or config.checkpoint_file)
    public: Ed25519PublicKey | None = None
    if public_path is not None:
        public = load_public_key(public_path)
    elif config.audit.signing_key is not None:
        public = load_private_key(config.audit.signing_key).public_key()
    if found and public is None:
        print("error: checkpoints need a public key to be trusted: --public-key FILE", file=sys.stderr)
        return EXIT_USAGE
    return _report(verify_log(log_, found, public), found, "audit log", log_.count_and_head()[0])


def _report(problems: list[str], checkpoints: Sequence[Checkpoint], what: str, entries: int) -> int:
    for problem in problems:
        print(f"{what} NOT intact: {problem}", file=sys.stderr)
    if problems:
        return EXIT_RUNTIME
    if not checkpoints:
        print(f"{what}: hash chain intact, but no signed checkpoint: a truncated or re-chained log would "
              "look the same (configure [audit] signing_key)")
        return EXIT_OK
    last = checkpoints[-1]
    print(f"{what} intact: {len(checkpoints)} signed checkpoint(s) hold, the latest of {last.count} entries, "
          f"head {last.head}")
    if entries > last.count:
        print(f"entries {last.count + 1}..{entries} are newer than the latest checkpoint: only their hash "
              "chain vouches for them")
    return EXIT_OK


def _export(config: CollectorConfig, log_: AuditLog, checkpointer: Checkpointer | None, out: Path) -> int:
    if checkpointer is not None:
        checkpointer.checkpoint(log_, _now_ms(), only_if_moved=True)
    found = read_checkpoints(config.checkpoint_file)
    try:
        count = log_.export(out, [cp.to_dict() for cp in found])
    except OSError as exc:
        print(f"error: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return EXIT_RUNTIME
    print(f"exported {count} entries and {len(found)} signed checkpoint(s) to {out}")
    return EXIT_OK


def main(argv: Sequence[str]) -> int:
    """`linewarden audit verify-export FILE --public-key KEY`."""
    parser = argparse.ArgumentParser(prog="linewarden audit", description="check audit evidence offline")
    sub = parser.add_subparsers(dest="cmd", required=True)
    verify = sub.add_parser("verify-export", help="verify an exported audit log with the collector's public key")
    verify.add_argument("file", type=Path)
    verify.add_argument("--public-key", type=Path, required=True)
    verify.add_argument("--anchors", type=Path, action="append", default=[],
                        help="checkpoints you hold yourself: SLA reports (JSON) or checkpoint files; repeatable")
    args = parser.parse_args(argv)
    try:
        public = load_public_key(args.public_key)
        with args.file.open(encoding="utf-8") as lines:
            entries, checkpoints = entry_dicts(lines)
        held = [cp for path in args.anchors for cp in read_anchors(path)]
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_RUNTIME
    except (EvidenceError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    every = sorted([*checkpoints, *held], key=lambda cp: (cp.count, cp.at_ms))
    if not every:
        print(f"{args.file} NOT verifiable: it holds no signed checkpoint", file=sys.stderr)
        return EXIT_RUNTIME
    return _report(verify_entries(entries, every, public), every, str(args.file), len(entries))
