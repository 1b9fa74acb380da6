"""API tokens: created once (the secret is shown then and never again), stored as SHA-256, revocable.

A token reads `lw_<id>_<secret>`: `id` finds the row, the SHA-256 of the whole token must match its hash.
Roles: `vendor` (one vendor's tickets only), `plant` (plant IT: pause, resume, workarounds, maintenance
windows, all tickets), `admin` (everything). A token may also have an expiry and be narrowed to scopes
(`read`: every GET; `tickets`, `maintenance`, `disputes`: the changes under those; `admin`: every scope);
its role still decides what it may do within them. Rotation issues a new token with the same role, vendor,
label, scopes and lifetime and revokes the old one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Any, Literal

from collector.audit import append_entry
from collector.store.base import Row, Store
from linewarden.errors import LinewardenError

Role = Literal["vendor", "plant", "admin"]
ROLES: tuple[Role, ...] = ("vendor", "plant", "admin")
Scope = Literal["read", "tickets", "maintenance", "disputes", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "tickets", "maintenance", "disputes", "admin")
log = logging.getLogger(__name__)
_TOKEN_ID = re.compile(r"^[0-9a-f]{12}$")


@dataclass(frozen=True)
class TokenInfo:
    id: str
    role: Role
    vendor: str | None
    label: str
    created_at: int
    revoked_at: int | None
    expires_at: int | None = None
    scopes: tuple[Scope, ...] = SCOPES

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or "admin" in self.scopes


class TokenRefused(str):
    """Why a token was refused (the 401's message and the audit entry's reason)."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _info(r: Row) -> TokenInfo:
    role: Role = r["role"]
    scopes: tuple[Scope, ...] = SCOPES if r["scopes"] is None else tuple(json.loads(r["scopes"]))
    return TokenInfo(r["id"], role, r["vendor"], r["label"], int(r["created_at"]), r["revoked_at"],
                     None if r["expires_at"] is None else int(r["expires_at"]), scopes)


def create_token(
    store: Store, role: Role, vendor: str | None, label: str, now: int, actor: str, origin: str,
    lifetime_ms: int | None = None, scopes: tuple[Scope, ...] = SCOPES,
) -> tuple[str, TokenInfo]:
    """A new token and its record (expiring `lifetime_ms` from now; None: never); the token itself is not
    stored anywhere."""
    with store.transaction() as tx:
        return _create(tx.sql, role, vendor, label, now, actor, origin, lifetime_ms, scopes, "token.created")


def _create(
    sql: Any, role: Role, vendor: str | None, label: str, now: int, actor: str, origin: str,
    lifetime_ms: int | None, scopes: tuple[Scope, ...], action: str, extra: dict[str, Any] | None = None,
) -> tuple[str, TokenInfo]:
    if not scopes or any(s not in SCOPES for s in scopes):
        raise LinewardenError(f"scopes: one or more of {', '.join(SCOPES)}")
    if lifetime_ms is not None and lifetime_ms <= 0:
        raise LinewardenError("a token's lifetime must be positive")
    if role not in ROLES:
        raise LinewardenError(f"unknown role {role!r} (use one of {', '.join(ROLES)})")
    if (role == "vendor") != (vendor is not None):
        raise LinewardenError("a vendor token needs --vendor, and only a vendor token takes one")
    token_id = secrets.token_hex(6)
    token = f"lw_{token_id}_{secrets.token_urlsafe(32)}"
    expires_at = None if lifetime_ms is None else now + lifetime_ms
    kept = sorted(set(scopes), key=SCOPES.index)
    sql.execute(
        "INSERT INTO api_tokens (id, token_sha256, role, vendor, label, created_at, expires_at, scopes)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (token_id, _digest(token), role, vendor, label, now, expires_at, json.dumps(kept)),
    )
    append_entry(sql, actor, origin, action, f"token/{token_id}",
                 {"role": role, "vendor": vendor, "label": label, "expires_at": expires_at, "scopes": kept,
                  **(extra or {})}, now)
    return token, TokenInfo(token_id, role, vendor, label, now, None, expires_at, tuple(kept))


def authenticate(store: Store, token: str, now: int) -> TokenInfo | TokenRefused:
    """The live token's record, or why it is refused (unknown, malformed, revoked, expired)."""
    parts = token.split("_", 2)
    if not token:
        return TokenRefused("no token")
    if len(parts) != 3 or parts[0] != "lw":
        return TokenRefused("malformed token")
    with store.reader() as sql:
        rows = sql.query("SELECT * FROM api_tokens WHERE id = ?", (parts[1],))
    if not rows or not hmac.compare_digest(rows[0]["token_sha256"], _digest(token)):
        return TokenRefused("unknown token")
    if rows[0]["revoked_at"] is not None:
        return TokenRefused("revoked token" + (" (rotated: use its replacement)" if rows[0]["rotated_to"] else ""))
    if rows[0]["expires_at"] is not None and int(rows[0]["expires_at"]) <= now:
        return TokenRefused("expired token: ask for a new one (`collector token rotate`)")
    return _info(rows[0])


def rotate_token(store: Store, token_id: str, now: int, actor: str, origin: str) -> tuple[str, TokenInfo]:
    """A new token like the live token `token_id` (same lifetime from now), which is revoked."""
    with store.transaction() as tx:
        rows = tx.sql.query("SELECT * FROM api_tokens WHERE id = ? AND revoked_at IS NULL", (token_id,))
        if not rows:
            raise LinewardenError(f"no live token {token_id}")
        old = _info(rows[0])
        lifetime = None if old.expires_at is None else old.expires_at - old.created_at
        token, info = _create(tx.sql, old.role, old.vendor, old.label, now, actor, origin, lifetime, old.scopes,
                              "token.rotated", {"replaces": token_id})
        tx.sql.execute("UPDATE api_tokens SET revoked_at = ?, rotated_to = ? WHERE id = ?", (now, info.id, token_id))
    return token, info


def list_tokens(store: Store) -> list[TokenInfo]:
    with store.reader() as sql:
        return [_info(r) for r in sql.query("SELECT * FROM api_tokens ORDER BY created_at, id")]


def revoke_token(store: Store, token_id: str, now: int, actor: str, origin: str) -> bool:
    with store.transaction() as tx:
        done = tx.sql.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, token_id)
        )
        if done:
            append_entry(tx.sql, actor, origin, "token.revoked", f"token/{token_id}", {}, now)
    return bool(done)


class FailedTokenLimit:
    """Refuses an address that gave `limit` failed tokens within `period_ms`, until its failures age out
    (kept in memory: a restart forgets them)."""

    def __init__(self, limit: int = 20, period_ms: int = 15 * 60_000) -> None:
        self.limit = limit
        self.period_ms = period_ms
        self._failures: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def _recent(self, origin: str, now: int) -> list[int]:
        kept = [t for t in self._failures.get(origin, []) if now - t < self.period_ms]
        if kept:
            self._failures[origin] = kept
        else:
            self._failures.pop(origin, None)
        return kept

    def locked(self, origin: str, now: int) -> bool:
        with self._lock:
            return len(self._recent(origin, now)) >= self.limit

    def failed(self, origin: str, now: int) -> None:
        with self._lock:
            self._failures[origin] = [*self._recent(origin, now), now][-self.limit:]


class FailedAuthAudit:
    """Records failed token authentications in the audit log, rate-limited so a flood cannot bury the log:
    per `window_ms` at most `per_origin` entries per client address and `overall` in all; what is left out
    is counted and goes into that address's next entry as `suppressed`."""

    def __init__(self, window_ms: int = 60_000, per_origin: int = 5, overall: int = 60) -> None:
        self.window_ms = window_ms
        self.per_origin = per_origin
        self.overall = overall
        self._window_start = -window_ms
        self._written: dict[str, int] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def record(self, store: Store, token: str, origin: str, now: int, reason: str = "") -> bool:
        """One failure (never the secret: only a token id, if the token has the form of one); True when
        it was written to the audit log."""
        with self._lock:
            if now - self._window_start >= self.window_ms:
                self._window_start, self._written = now, {}
            if self._written.get(origin, 0) >= self.per_origin or sum(self._written.values()) >= self.overall:
                self._suppressed[origin] = self._suppressed.get(origin, 0) + 1
                return False
            self._written[origin] = self._written.get(origin, 0) + 1
            suppressed = self._suppressed.pop(origin, 0)
        parts = token.split("_", 2)
        token_id = parts[1] if len(parts) == 3 and parts[0] == "lw" and _TOKEN_ID.match(parts[1]) else None
        details = {"reason": reason or ("no token" if not token else "unknown, malformed or revoked token"),
                   "token_id": token_id, "suppressed": suppressed}
        try:
            with store.transaction() as tx:
                append_entry(tx.sql, "anonymous", origin, "auth.failed", f"token/{token_id}" if token_id else "api",
                             details, now)
        except Exception:  # the caller still gets its 401; the store's failure is logged, not turned into a 500
            log.exception("could not record a failed authentication from %s in the audit log", origin)
            return False
        return True
