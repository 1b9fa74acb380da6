"""The `linewarden` command: a thin dispatcher to the agent, collector and simulator CLIs.

Each app's CLI is imported only when its sub-command runs, so an agent host never loads the
collector's web stack. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from linewarden import __version__
from linewarden.errors import ConfigError

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2

# sub-command → module whose `main(argv) -> int` runs it
_APPS = {
    "agent": ("agent.cli", "run, check and inspect the edge agent"),
    "collector": ("collector.cli", "run the collector; reports, imports, exports, audit, tickets"),
    "sim": ("simulators.cli", "run OPC UA, Modbus and MES simulators and scenarios"),
    "audit": ("collector.audit_cli", "verify an exported audit log offline with the collector's public key"),
    "demo": ("simulators.demo", "plant in a box: simulators, agent, collector and a vendor, end to end"),
    "certs": ("linewarden.certs_cli", "a small CA: certificates for the broker, collector and agents"),
}
_SIM_KINDS = ("plant", "scenario")
# optional dependencies → the extra that installs them
_EXTRAS = {"fastapi": "collector", "uvicorn": "collector", "aiosmtpd": "collector", "psycopg": "postgres",
           "amqtt": "demo"}


def config_parser() -> argparse.ArgumentParser:
    from linewarden.config.kinds import KINDS

    parser = argparse.ArgumentParser(prog="linewarden config", description="validate config files, print schemas")
    sub = parser.add_subparsers(dest="cmd", required=True)
    check = sub.add_parser("check", help="validate config files (kind detected from the top-level table)")
    check.add_argument("files", nargs="+", type=Path)
    check.add_argument("--kind", choices=[*KINDS, *_SIM_KINDS], help="validate as this kind")
    schema = sub.add_parser("schema", help="print the JSON Schema of a config kind")
    schema.add_argument("kind", choices=[*KINDS, *_SIM_KINDS])
    return parser


def _config_main(argv: Sequence[str]) -> int:
    from linewarden.config.kinds import KINDS
    from linewarden.config.load import json_schema

    args = config_parser().parse_args(argv)

    if args.cmd == "schema":
        if args.kind in _SIM_KINDS:
            from simulators.config import SIM_KINDS

            model = SIM_KINDS[args.kind]
        else:
            model = KINDS[args.kind]
        print(json.dumps(json_schema(model), indent=2))
        return EXIT_OK

    failed = 0
    for path in args.files:
        try:
            kind = _check_any(path, args.kind)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
        else:
            print(f"ok: {path} ({kind})")
    return EXIT_USAGE if failed else EXIT_OK


def _check_any(path: Path, kind: str | None) -> str:
    from linewarden.config.kinds import check_file, detect_kind
    from linewarden.config.load import read_toml

    if kind is None:
        data = read_toml(path)
        if detect_kind(data) is None:
            from simulators.config import detect_sim_kind

            kind = detect_sim_kind(data, source=str(path))
    if kind in _SIM_KINDS:
        from simulators.config import check_sim_file

        check_sim_file(path, kind)
        return kind
    return check_file(path, kind)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linewarden",
        description="Hold plant software vendors to their support contracts, measured from the plant floor.",
    )
    parser.add_argument("--version", action="version", version=f"linewarden {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in _APPS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    sub.add_parser("config", help="validate config files and print their JSON Schema", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, so a closed pipe is caught below, not at interpreter exit
    except BrokenPipeError:
        # `linewarden … | head`: the reader has what it wanted. Point stdout at devnull so the final
        # flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    return code


def _main(argv: Sequence[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not args or args[0].startswith("-"):
        try:
            parser.parse_args(args)
        except SystemExit as exc:
            return int(exc.code or 0)
        parser.print_help()
        return EXIT_USAGE
    command, rest = args[0], args[1:]
    try:
        if command == "config":
            return _config_main(rest)
        if command not in _APPS:
            parser.print_usage(sys.stderr)
            print(f"linewarden: error: unknown command {command!r}", file=sys.stderr)
            return EXIT_USAGE
        try:
            module = importlib.import_module(_APPS[command][0])
        except ModuleNotFoundError as exc:
            extra = _EXTRAS.get(exc.name or "", "dev")
            print(f"error: `linewarden {command}` needs {exc.name}: pip install 'linewarden[{extra}]'", file=sys.stderr)
            return EXIT_RUNTIME
        code: int = module.main(rest)
        return code
    except SystemExit as exc:  # argparse in the sub-commands
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_RUNTIME


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
