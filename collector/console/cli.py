"""`linewarden collector user add|list|disable|passwd|reset-mfa`: the console's local users."""

from __future__ import annotations

import argparse
import getpass
import socket
import sys

from collector.console.errors import ConsoleError
from collector.console.users import ROLES, add_user, disable_user, list_users, reset_second_factor, set_password
from collector.service import wall_clock_ms
from collector.store import open_store
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from linewarden.output import FORMATS, render
from linewarden.timeutil import ms_to_dt

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


def user_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("add", "list", "disable", "passwd", "reset-mfa"))
    p.add_argument("username", nargs="?", help="add, disable, passwd, reset-mfa: the user")
    p.add_argument("--role", choices=ROLES, help="add: plant_it, procurement, vendor or admin")
    p.add_argument("--vendor", help="add: the vendor a vendor user speaks for")
    p.add_argument("--site", action="append", default=[], help="add: limit the user to this site (repeatable)")
    p.add_argument("--password-stdin", action="store_true",
                   help="add, passwd: read the password from the first line of stdin instead of prompting")
    p.add_argument("--all", action="store_true",
                   help="reset-mfa: every user (after the TOTP key file was lost: its secrets cannot be read)")
    p.add_argument("--format", choices=FORMATS, default="table")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"password for {args.username}: ")
    if getpass.getpass("again: ") != first:
        raise ConsoleError("the two passwords differ")
    return first


def user(args: argparse.Namespace) -> int:
    takes_user = args.action != "list" and not (args.action == "reset-mfa" and args.all)
    if (takes_user != (args.username is not None) or (args.action == "add") != (args.role is not None)
            or (args.all and args.action != "reset-mfa")):
        print("error: add takes a user name and --role; disable and passwd a user name; reset-mfa a user name or "
              "--all; list nothing", file=sys.stderr)
        return EXIT_USAGE
    store = open_store(load(CollectorConfig, args.config))
    actor, origin, now = f"cli:{getpass.getuser()}", f"cli@{socket.gethostname()}", wall_clock_ms()
    try:
        if args.action == "list":
            rows = [
                {"user": u.username, "login": "sso" if u.external else "password", "role": u.role, "vendor": u.vendor,
                 "sites": ",".join(u.sites) or "all",
                 "created": ms_to_dt(u.created_at).isoformat(),
                 "disabled": None if u.disabled_at is None else ms_to_dt(u.disabled_at).isoformat()}
                for u in list_users(store)
            ]
            columns = ("user", "login", "role", "vendor", "sites", "created", "disabled")
            print(render(rows, args.format, columns=columns))
        elif args.action == "add":
            made = add_user(store, args.username, _password(args), args.role, args.vendor, tuple(args.site), now,
                            actor, origin)
            print(f"user {made.username} added ({made.role}{' ' + made.vendor if made.vendor else ''})")
        elif args.action == "disable":
            disable_user(store, args.username, now, actor, origin)
            print(f"user {args.username} disabled; its sessions ended")
        elif args.action == "reset-mfa":
            cleared = reset_second_factor(store, None if args.all else (args.username,), now, actor, origin)
            print(f"second factor cleared for {', '.join(cleared) or 'nobody (none was set)'}; they enrol again "
                  "at their next login, and their sessions ended")
        else:
            set_password(store, args.username, _password(args), now, actor, origin)
            print(f"password of {args.username} changed; its sessions ended")
    except ConsoleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    finally:
        store.close()
    return EXIT_OK
