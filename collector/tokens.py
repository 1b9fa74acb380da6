"""API tokens: created once (the secret is shown then and never again), stored as SHA-256, revocable.

A token reads `lw_<id>_<secret>`: `id` finds the row, the SHA-256 of the whole token must match its hash.
Roles: `vendor` (one vendor's tickets only), `plant` (plant IT: pause, resume, workarounds, maintenance
windows, all tickets), `admin` (everything).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from collector.audit import append_entry
from collector.store.base import Row, Store
from linewarden.errors import LinewardenError

Role = Literal["vendor", "plant", "admin"]
ROLES: tuple[Role, ...] = ("vendor", "plant", "admin")


@dataclass(frozen=True)
class TokenInfo:
    id: str
    role: Role
    vendor: str | None
    label: str
    created_at: int
    revoked_at: int | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _info(r: Row) -> TokenInfo:
    role: Role = r["role"]
    return TokenInfo(r["id"], role, r["vendor"], r["label"], int(r["created_at"]), r["revoked_at"])


def create_token(
    store: Store, role: Role, vendor: str | None, label: str, now: int, actor: str, origin: str
) -> tuple[str, TokenInfo]:
    """A new token and its record; the token itself is not stored anywhere."""
    if role not in ROLES:
        raise LinewardenError(f"unknown role {role!r} (use one of {', '.join(ROLES)})")
    if (role == "vendor") != (vendor is not None):
        raise LinewardenError("a vendor token needs --vendor, and only a vendor token takes one")
    token_id = secrets.token_hex(6)
    token = f"lw_{token_id}_{secrets.token_urlsafe(32)}"
    with store.transaction() as tx:
        tx.sql.execute(
            "INSERT INTO api_tokens (id, token_sha256, role, vendor, label, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (token_id, _digest(token), role, vendor, label, now),
        )
        append_entry(tx.sql, actor, origin, "token.created", f"token/{token_id}",
                     {"role": role, "vendor": vendor, "label": label}, now)
    return token, TokenInfo(token_id, role, vendor, label, now, None)


def authenticate(store: Store, token: str) -> TokenInfo | None:
    """The live token's record, or None for an unknown, malformed or revoked token."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "lw":
        return None
    with store.reader() as sql:
        rows = sql.query("SELECT * FROM api_tokens WHERE id = ?", (parts[1],))
    if not rows or rows[0]["revoked_at"] is not None:
        return None
    if not hmac.compare_digest(rows[0]["token_sha256"], _digest(token)):
        return None
    return _info(rows[0])


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
