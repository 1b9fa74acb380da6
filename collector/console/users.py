"""Local console users: a name, an argon2id password hash, a role, and a scope (sites; a vendor for a
vendor user). Adding, disabling, changing a password and resetting a second factor are audit-logged with who
did it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from collector.audit import append_entry
from collector.console.errors import ConsoleError
from collector.scoping import Viewer
from collector.store.base import Row, Store

Role = Literal["plant_it", "procurement", "vendor", "admin"]
ROLES: tuple[Role, ...] = ("plant_it", "procurement", "vendor", "admin")
MIN_PASSWORD = 10
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters (RFC 9106 low-memory)
# Verified when the user does not exist, so an unknown name costs as much time as a wrong password.
_DUMMY_HASH = _HASHER.hash("not a password of anyone")


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    vendor: str | None
    sites: tuple[str, ...]
    created_at: int
    disabled_at: int | None
    external: bool = False
    """Logs in through single sign-on only (no password)."""

    @property
    def viewer(self) -> Viewer:
        return Viewer(self.role, self.vendor, frozenset(self.sites))


def _user(r: Row) -> User:
    return User(r["username"], r["role"], r["vendor"], tuple(json.loads(r["sites"])), int(r["created_at"]),
                r["disabled_at"], r["external_issuer"] is not None)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ConsoleError(f"a password needs at least {MIN_PASSWORD} characters")


def add_user(
    store: Store, username: str, password: str, role: Role, vendor: str | None, sites: tuple[str, ...],
    now: int, actor: str, origin: str,
) -> User:
    if not _NAME.match(username):
        raise ConsoleError(f"user name {username!r}: lower-case letters, digits, '.', '_' and '-' (up to 64)")
    if role not in ROLES:
        raise ConsoleError(f"unknown role {role!r} (use one of {', '.join(ROLES)})")
    if (role == "vendor") != (vendor is not None):
        raise ConsoleError("a vendor user needs --vendor, and only a vendor user takes one")
    _check_password(password)
    with store.transaction() as tx:
        if tx.sql.query("SELECT 1 FROM console_users WHERE username = ?", (username,)):
            raise ConsoleError(f"user {username!r} exists already")
        tx.sql.execute(
            "INSERT INTO console_users (username, password_hash, role, vendor, sites, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (username, _HASHER.hash(password), role, vendor, json.dumps(sorted(sites)), now, now),
        )
        append_entry(tx.sql, actor, origin, "console.user_added", f"user/{username}",
                     {"role": role, "vendor": vendor, "sites": sorted(sites)}, now)
    return User(username, role, vendor, tuple(sorted(sites)), now, None)


def list_users(store: Store) -> list[User]:
    with store.reader() as sql:
        return [_user(r) for r in sql.query("SELECT * FROM console_users ORDER BY username")]


def get_user(store: Store, username: str) -> User | None:
    with store.reader() as sql:
        rows = sql.query("SELECT * FROM console_users WHERE username = ?", (username,))
    return _user(rows[0]) if rows else None


def disable_user(store: Store, username: str, now: int, actor: str, origin: str) -> None:
    """Disable the user and end its sessions."""
    with store.transaction() as tx:
        if not tx.sql.execute(
            "UPDATE console_users SET disabled_at = ?, updated_at = ? WHERE username = ? AND disabled_at IS NULL",
            (now, now, username),
        ):
            raise ConsoleError(f"no enabled user {username!r}")
        tx.sql.execute("UPDATE console_sessions SET ended_at = ? WHERE username = ? AND ended_at IS NULL",
                       (now, username))
        append_entry(tx.sql, actor, origin, "console.user_disabled", f"user/{username}", {}, now)


def set_password(store: Store, username: str, password: str, now: int, actor: str, origin: str) -> None:
    """A new password; the user's open sessions end."""
    _check_password(password)
    with store.transaction() as tx:
        if tx.sql.query("SELECT 1 FROM console_users WHERE username = ? AND external_issuer IS NOT NULL", (username,)):
            raise ConsoleError(f"user {username!r} logs in through single sign-on and has no password")
        if not tx.sql.execute(
            "UPDATE console_users SET password_hash = ?, updated_at = ? WHERE username = ?",
            (_HASHER.hash(password), now, username),
        ):
            raise ConsoleError(f"no user {username!r}")
        tx.sql.execute("UPDATE console_sessions SET ended_at = ? WHERE username = ? AND ended_at IS NULL",
                       (now, username))
        append_entry(tx.sql, actor, origin, "console.password_changed", f"user/{username}", {}, now)


def reset_second_factor(
    store: Store, usernames: tuple[str, ...] | None, now: int, actor: str, origin: str
) -> list[str]:
    """Clear the TOTP secret and recovery codes of these users (None: of every user), so that each enrols again
    at the next login, and end their sessions (with any enrolment in progress). For a lost phone, or a lost
    `console.totp_key_file` (then every secret is unreadable). Returns the users whose factor was cleared."""
    with store.transaction() as tx:
        known = [str(r["username"]) for r in tx.sql.query("SELECT username FROM console_users ORDER BY username")]
        chosen = known if usernames is None else list(usernames)
        missing = [u for u in chosen if u not in known]
        if missing:
            raise ConsoleError(f"no user {missing[0]!r}")
        cleared: list[str] = []
        for username in chosen:
            had = tx.sql.query(
                "SELECT 1 FROM console_users WHERE username = ? AND totp_secret IS NOT NULL UNION ALL"
                " SELECT 1 FROM console_recovery_codes WHERE username = ?", (username, username))
            tx.sql.execute("UPDATE console_users SET totp_secret = NULL, totp_last_step = 0, updated_at = ?"
                           " WHERE username = ?", (now, username))
            tx.sql.execute("DELETE FROM console_recovery_codes WHERE username = ?", (username,))
            tx.sql.execute("UPDATE console_sessions SET pending_totp = NULL, ended_at = COALESCE(ended_at, ?)"
                           " WHERE username = ? AND (ended_at IS NULL OR pending_totp IS NOT NULL)", (now, username))
            if had:
                cleared.append(username)
                append_entry(tx.sql, actor, origin, "console.mfa_reset", f"user/{username}", {}, now)
        if usernames is None:  # a lost key file: no secret it sealed may stay behind, in any session either
            tx.sql.execute("UPDATE console_sessions SET pending_totp = NULL, ended_at = COALESCE(ended_at, ?)"
                           " WHERE pending_totp IS NOT NULL", (now,))
    return cleared


# Stored as an SSO user's password hash: not an argon2 hash, so no password ever matches it.
_NO_PASSWORD = "!external"


def upsert_external(
    store: Store, username: str, issuer: str, subject: str, role: Role, vendor: str | None, sites: tuple[str, ...],
    now: int, origin: str,
) -> User:
    """Create or update the user a single sign-on login names. Refused (ConsoleError) when the name belongs to
    a local user or to another subject, or when the user is disabled."""
    if not _NAME.match(username):
        raise ConsoleError(f"the identity provider's user name {username[:64]!r} is not a valid console user name")
    with store.transaction() as tx:
        rows = tx.sql.query("SELECT * FROM console_users WHERE username = ?", (username,))
        if rows and (rows[0]["external_issuer"], rows[0]["external_subject"]) != (issuer, subject):
            raise ConsoleError(f"user {username!r} exists already as another (local or external) user")
        if rows and rows[0]["disabled_at"] is not None:
            raise ConsoleError(f"user {username!r} is disabled")
        if rows:
            tx.sql.execute("UPDATE console_users SET role = ?, vendor = ?, sites = ?, updated_at = ?"
                           " WHERE username = ?", (role, vendor, json.dumps(sorted(sites)), now, username))
        else:
            tx.sql.execute(
                "INSERT INTO console_users (username, password_hash, role, vendor, sites, created_at, updated_at,"
                " external_issuer, external_subject) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (username, _NO_PASSWORD, role, vendor, json.dumps(sorted(sites)), now, now, issuer, subject),
            )
        before = None if not rows else {"role": rows[0]["role"], "vendor": rows[0]["vendor"],
                                        "sites": json.loads(rows[0]["sites"])}
        after = {"role": role, "vendor": vendor, "sites": sorted(sites)}
        if before != after:
            append_entry(tx.sql, f"sso:{issuer}", origin, "console.sso_user_updated" if rows else
                         "console.sso_user_added", f"user/{username}", {**after, "subject": subject}, now)
        created = int(rows[0]["created_at"]) if rows else now
    return User(username, role, vendor, tuple(sorted(sites)), created, None, True)


def check_password(store: Store, username: str, password: str) -> User | None:
    """The enabled user whose password this is, else None (unknown, disabled or wrong: indistinguishable)."""
    with store.reader() as sql:
        rows = sql.query("SELECT * FROM console_users WHERE username = ?", (username,))
    stored = rows[0]["password_hash"] if rows else _DUMMY_HASH
    try:
        _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if not rows or rows[0]["disabled_at"] is not None:
        return None
    return _user(rows[0])
