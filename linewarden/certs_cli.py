"""`linewarden certs init|issue`: a small certificate authority for sites without a PKI of their own.

Keys are written 0600 (never readable by others, not even for a moment: created with that mode) and never
overwritten; the CA key should stay on the machine of whoever issues certificates, not on agent hosts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from linewarden import certs
from linewarden.wire import is_valid_id

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
CA_CERT, CA_KEY = "ca.pem", "ca.key"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linewarden certs",
        description="a small CA for the broker, the collector and each agent (for sites without a PKI)",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    init = sub.add_parser("init", help="create the CA: ca.pem (give to every host) and ca.key (keep safe)")
    init.add_argument("--dir", type=Path, required=True, help="folder for ca.pem and ca.key (created 0700)")
    init.add_argument("--name", default="linewarden CA", help="the CA's common name")
    init.add_argument("--days", type=int, default=3650)
    issue = sub.add_parser("issue", help="issue a certificate signed by the CA in --dir")
    issue.add_argument("--dir", type=Path, required=True, help="the CA's folder (from `certs init`)")
    issue.add_argument("kind", choices=["agent", "broker", "collector"])
    issue.add_argument(
        "name", nargs="?",
        help="agent: SITE/AGENT (the broker's user name for it); broker: a file name; collector: default 'collector'",
    )  # fmt: skip
    issue.add_argument("--host", action="append", default=[], help="broker: a host name or IP it is reached by")
    issue.add_argument("--days", type=int, default=397)
    issue.add_argument("--out", type=Path, help="folder for the certificate and key (default: --dir)")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    now = dt.datetime.now(dt.UTC)
    try:
        if args.days < 1:
            raise certs.CertError("--days must be at least 1")
        if args.cmd == "init":
            return _init(args.dir, args.name, now, args.days)
        return _issue(args, now)
    except certs.CertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return EXIT_RUNTIME


def _init(folder: Path, name: str, now: dt.datetime, days: int) -> int:
    _absent(folder / CA_KEY, folder / CA_CERT)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    authority = certs.new_authority(name, now, days)
    _write(folder / CA_KEY, authority.key_pem, 0o600)
    _write(folder / CA_CERT, authority.cert_pem, 0o644)
    print(f"CA {name!r} valid {days} days: {folder / CA_CERT} (copy to the broker and every client),")
    print(f"{folder / CA_KEY} (keep here; whoever holds it can issue identities the broker accepts)")
    return EXIT_OK


def _issue(args: argparse.Namespace, now: dt.datetime) -> int:
    kind: str = args.kind
    name: str | None = args.name
    hosts: list[str] = args.host
    if kind == "agent":
        if name is None or name.count("/") != 1 or not all(is_valid_id(p) for p in name.split("/")):
            raise certs.CertError("an agent's certificate is named SITE/AGENT, e.g. plant1/line3-host1")
        common_name, stem = name, name.replace("/", ".")
    elif kind == "broker":
        if not hosts:
            raise certs.CertError("a broker certificate needs at least one --host (name or IP clients connect to)")
        common_name, stem = hosts[0], name or "broker"
    else:
        common_name = stem = name or "collector"
    if kind != "broker" and hosts:
        raise certs.CertError("--host is for broker certificates")
    try:
        authority = certs.Issued((args.dir / CA_CERT).read_bytes(), (args.dir / CA_KEY).read_bytes())
    except FileNotFoundError as exc:
        raise certs.CertError(f"no CA in {args.dir} ({exc.filename} missing): run `linewarden certs init`") from None
    issued = certs.issue(
        authority, common_name, now, args.days, server_names=hosts or None, client=kind != "broker"
    )
    out: Path = args.out or args.dir
    _absent(out / f"{stem}.key", out / f"{stem}.pem")
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(out / f"{stem}.key", issued.key_pem, 0o600)
    _write(out / f"{stem}.pem", issued.cert_pem, 0o644)
    (valid,) = certs.inspect_pem(issued.cert_pem, certs.Role.OWN)
    print(f"{kind} certificate {common_name!r}: {out / f'{stem}.pem'} and {out / f'{stem}.key'}, "
          f"valid until {dt.datetime.fromtimestamp(valid.not_after_ms / 1000, dt.UTC):%Y-%m-%d}")  # fmt: skip
    return EXIT_OK


def _absent(*paths: Path) -> None:
    for path in paths:
        if path.exists():
            raise certs.CertError(f"{path} exists already; not overwritten (move it away to issue anew)")


def _write(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` from the start; an existing file is an error, never overwritten."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise certs.CertError(f"{path} exists already; not overwritten (move it away to issue anew)") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # the umask may have taken bits away from a certificate's 0644
