"""The console's second factor: TOTP (collector/console/totp.py) with one-time recovery codes.

A user of a role in `[console] mfa_required_roles` without a secret is sent to enrol after the password;
a user with a secret (of any role) gives a code after the password. Enrolment offers a fresh secret kept on
the session until a code from it is given; then the secret moves to the user and ten recovery codes are
shown once (only their SHA-256 is stored). Each use is audit-logged. Secrets are stored encrypted, bound to
their row (collector/console/totp_vault.py): one that does not decrypt (moved from another user's row,
altered) accepts no code, and the user's recovery codes still work.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence

from collector.audit import append_entry
from collector.console import totp
from collector.console.sessions import LoginStep, Session, SessionState
from collector.console.totp_vault import TotpVault, session_owner, user_owner
from collector.console.users import User
from collector.store.base import Store

log = logging.getLogger(__name__)

RECOVERY_CODES = 10


def login_step(store: Store, required_roles: Sequence[str]) -> LoginStep:
    def step(user: User, session: Session) -> SessionState:
        if _secret(store, user.username) is not None:
            return "mfa_pending"
        return "password_ok" if user.role in required_roles else "full"
    return step


def _secret(store: Store, username: str) -> str | None:
    with store.reader() as sql:
        rows = sql.query("SELECT totp_secret FROM console_users WHERE username = ?", (username,))
    return rows[0]["totp_secret"] if rows else None


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().lower().replace("-", "").encode("utf-8")).hexdigest()


def offer_secret(store: Store, vault: TotpVault, session: Session) -> str:
    """The secret being enrolled on this session (made on first call, and again if the stored one does not
    decrypt for this session)."""
    owner = session_owner(session.id_sha256)
    with store.transaction() as tx:
        rows = tx.sql.query("SELECT pending_totp FROM console_sessions WHERE id_sha256 = ?", (session.id_sha256,))
        if rows and rows[0]["pending_totp"]:
            offered = vault.open(str(rows[0]["pending_totp"]), owner)
            if offered is not None:
                return offered
        secret = totp.new_secret()
        tx.sql.execute("UPDATE console_sessions SET pending_totp = ? WHERE id_sha256 = ?",
                       (vault.seal(secret, owner), session.id_sha256))
        return secret


def finish_enrolment(
    store: Store, vault: TotpVault, session: Session, code: str, now: int, origin: str
) -> list[str] | None:
    """With a right code from the offered secret: the user's secret, and its new recovery codes (returned
    once, stored hashed); None for a wrong code."""
    secret = offer_secret(store, vault, session)
    step = totp.matching_step(secret, code, now, 0)
    if step is None:
        return None
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]
    with store.transaction() as tx:
        tx.sql.execute("UPDATE console_users SET totp_secret = ?, totp_last_step = ?, updated_at = ? "
                       "WHERE username = ?", (vault.seal(secret, user_owner(session.username)), step, now,
                                              session.username))
        tx.sql.execute("UPDATE console_sessions SET pending_totp = NULL WHERE id_sha256 = ?", (session.id_sha256,))
        tx.sql.execute("DELETE FROM console_recovery_codes WHERE username = ?", (session.username,))
        for c in codes:
            tx.sql.execute("INSERT INTO console_recovery_codes (username, code_sha256) VALUES (?, ?)",
                           (session.username, _hash(c)))
        append_entry(tx.sql, f"console:{session.username}", origin, "console.mfa_enrolled",
                     f"user/{session.username}", {"recovery_codes": RECOVERY_CODES}, now)
    return codes


def check_code(store: Store, vault: TotpVault, session: Session, code: str, now: int, origin: str) -> bool:
    """A TOTP code (each accepted once) or an unused recovery code (then used up) of the session's user."""
    with store.transaction() as tx:
        rows = tx.sql.query("SELECT totp_secret, totp_last_step FROM console_users WHERE username = ?",
                            (session.username,))
        if not rows or not rows[0]["totp_secret"]:
            return False
        secret = vault.open(str(rows[0]["totp_secret"]), user_owner(session.username))
        if secret is None:
            log.warning("console: the TOTP secret stored for %s does not decrypt for that user (copied from "
                        "another user's row, or altered): no code is accepted, recovery codes are", session.username)
        step = None if secret is None else totp.matching_step(secret, code, now, int(rows[0]["totp_last_step"]))
        if step is not None:
            tx.sql.execute("UPDATE console_users SET totp_last_step = ? WHERE username = ?",
                           (step, session.username))
            return True
        if len(code) > 40 or not tx.sql.execute(
            "UPDATE console_recovery_codes SET used_at = ? WHERE username = ? AND code_sha256 = ? "
            "AND used_at IS NULL", (now, session.username, _hash(code)),
        ):
            return False
        left = tx.sql.query("SELECT COUNT(*) AS n FROM console_recovery_codes WHERE username = ? "
                            "AND used_at IS NULL", (session.username,))
        append_entry(tx.sql, f"console:{session.username}", origin, "console.recovery_code_used",
                     f"user/{session.username}", {"left": int(left[0]["n"])}, now)
        return True
