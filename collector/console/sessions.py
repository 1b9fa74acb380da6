"""Server-side sessions and the login pipeline.

The browser holds only a random session id (cookie `lw_session`: HttpOnly, SameSite=Strict, Secure over
HTTPS); the table keeps its SHA-256, the user, the session's state, its CSRF token and its expiry.

A login is a pipeline of steps. A session is created in state `password_ok` by the password step; each
further step in `LOGIN_STEPS` (e.g. a TOTP check: state `mfa_pending` until the code is given) may move it
on; only a session in state `full` reaches the pages. With no further steps configured, the password step
completes the login. Single sign-on plugs in as another first step: it calls `start_session` with
`method="oidc"` for the user its identity provider vouched for.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from collector.audit import append_entry
from collector.console.users import User, get_user
from collector.store.base import Store

SessionState = Literal["password_ok", "mfa_pending", "full"]
COOKIE = "lw_session"


@dataclass(frozen=True)
class Session:
    id_sha256: str
    username: str
    state: SessionState
    method: str
    csrf: str
    expires_at: int


# A step after the password: given the user and the session, the state the session moves to ("full" when
# the step has nothing to ask). None configured today; a TOTP step would return "mfa_pending" until its form
# is answered.
LoginStep = Callable[[User, Session], SessionState]
LOGIN_STEPS: Sequence[LoginStep] = ()


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def start_session(
    store: Store, user: User, method: str, origin: str, now: int, ttl_ms: int, steps: Sequence[LoginStep] = LOGIN_STEPS
) -> tuple[str, Session]:
    """A new session for a user whose first login step passed; returns the id for the cookie and the session,
    `full` unless a further step asks for more. The login is audit-logged."""
    session_id = secrets.token_urlsafe(32)
    session = Session(_digest(session_id), user.username, "password_ok", method, secrets.token_urlsafe(24),
                      now + ttl_ms)
    state: SessionState = "full"
    for step in steps:
        state = step(user, session)
        if state != "full":
            break
    session = Session(session.id_sha256, session.username, state, method, session.csrf, session.expires_at)
    with store.transaction() as tx:
        tx.sql.execute(
            "INSERT INTO console_sessions (id_sha256, username, state, method, csrf, origin, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (session.id_sha256, user.username, state, method, session.csrf, origin, now, session.expires_at),
        )
        append_entry(tx.sql, f"console:{user.username}", origin, "console.login", f"user/{user.username}",
                     {"method": method, "state": state}, now)
    return session_id, session


def record_failure(store: Store, username: str, origin: str, now: int) -> None:
    with store.transaction() as tx:
        append_entry(tx.sql, "console", origin, "console.login_failed", f"user/{username[:64]}", {}, now)


def lookup(store: Store, session_id: str, now: int) -> tuple[Session, User] | None:
    """The live session and its enabled user, or None (unknown, ended, expired, user disabled)."""
    if not session_id or len(session_id) > 100:
        return None
    with store.reader() as sql:
        rows = sql.query("SELECT * FROM console_sessions WHERE id_sha256 = ?", (_digest(session_id),))
    if not rows or rows[0]["ended_at"] is not None or int(rows[0]["expires_at"]) <= now:
        return None
    r = rows[0]
    user = get_user(store, r["username"])
    if user is None or user.disabled_at is not None:
        return None
    return Session(r["id_sha256"], r["username"], r["state"], r["method"], r["csrf"], int(r["expires_at"])), user


def csrf_ok(session: Session, token: str) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf, token)


def end_session(store: Store, session: Session, origin: str, now: int) -> None:
    with store.transaction() as tx:
        tx.sql.execute("UPDATE console_sessions SET ended_at = ? WHERE id_sha256 = ? AND ended_at IS NULL",
                       (now, session.id_sha256))
        append_entry(tx.sql, f"console:{session.username}", origin, "console.logout", f"user/{session.username}",
                     {}, now)
