"""Options every `linewarden agent|collector` command shares, accepted before or after any sub-command.

`share(parser)` adds `--config`, `--log-level` and `--log-format` to the parser and to every parser
below it (sub-commands and their actions, however deep), so `collector --config F contract list`,
`collector contract --config F list` and `collector contract list --config F` all parse the same.
Each copy defaults to "not given" (argparse.SUPPRESS): a copy further down never overwrites a value
given further up with its default; `resolve` fills the defaults in and enforces `--config`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from linewarden.logs import LOG_FORMATS, LOG_LEVELS

SHARED = ("--config", "--log-level", "--log-format")


def _add_shared(parser: argparse.ArgumentParser, config_help: str) -> None:
    parser.add_argument("--config", type=Path, default=argparse.SUPPRESS, metavar="F", help=config_help)
    parser.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS, default=argparse.SUPPRESS,
                        help="overrides the config's log_level")  # fmt: skip
    parser.add_argument("--log-format", choices=LOG_FORMATS, default=argparse.SUPPRESS,
                        help="text or json (one object per line); overrides the config's log_format")  # fmt: skip


def subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of `parser`'s sub-commands (one level down)."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found += list(dict.fromkeys(action.choices.values()))  # aliases map to the same parser
    return found


def share(parser: argparse.ArgumentParser, config_help: str) -> None:
    if not any(opt in parser._option_string_actions for opt in SHARED):
        _add_shared(parser, config_help)
    for child in subparsers(parser):
        share(child, config_help)


def resolve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Fill in what no level was given; `--config` is required."""
    if getattr(args, "config", None) is None:
        parser.error("the following arguments are required: --config")
    if not hasattr(args, "log_level"):
        args.log_level = None
    if not hasattr(args, "log_format"):
        args.log_format = None
    return args
