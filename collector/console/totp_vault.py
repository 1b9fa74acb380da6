"""The console's TOTP secrets encrypted at rest (AES-256-GCM), with a key kept in a file outside the database.

A stored secret reads `lw-totp1:<key id>:<base64 of nonce and ciphertext>`. The associated data names the
row the secret belongs to (`user/<username>`, or `session/<session hash>` for a secret offered during
enrolment), so a value copied into another user's row does not decrypt there. The key id (the first 16 hex
digits of the SHA-256 of the key) tells a wrong key file, which stops the collector at start, from a value
moved or altered in the database, which only fails that one login.

`open_vault` runs at start: it loads the key file (creating it 0600 when neither it nor any encrypted secret
exists yet) and encrypts the secrets an earlier version stored in the clear.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from collector.store.base import Store
from linewarden.errors import ConfigError
from linewarden.files import FILE_MODE, private_dir

log = logging.getLogger(__name__)

PREFIX = "lw-totp1:"
KEY_SETTING = "console.totp_key_file"
_KEY_BYTES, _NONCE_BYTES = 32, 12
_AD = b"linewarden console totp\x00"


class TotpVault:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:16]

    @classmethod
    def ephemeral(cls) -> TotpVault:
        """A key for this process alone (tests, the demo): what it encrypts is lost with the process."""
        return cls(secrets.token_bytes(_KEY_BYTES))

    def seal(self, secret: str, owner: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode("utf-8"), _AD + owner.encode("utf-8"))
        return f"{PREFIX}{self.key_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def open(self, value: str, owner: str) -> str | None:
        """The secret, or None when `value` is not one this key sealed for `owner` (another key, another
        row's value, or altered)."""
        if sealed_key_id(value) != self.key_id:
            return None
        try:
            raw = base64.b64decode(value.rsplit(":", 1)[1], validate=True)
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _AD + owner.encode("utf-8")).decode()
        except (binascii.Error, ValueError, InvalidTag):
            return None


def user_owner(username: str) -> str:
    return f"user/{username}"


def session_owner(id_sha256: str) -> str:
    return f"session/{id_sha256}"


def sealed_key_id(value: str) -> str | None:
    """The key id of an encrypted value; None for a secret stored in the clear."""
    if not value.startswith(PREFIX):
        return None
    return value[len(PREFIX):].split(":", 1)[0]


# Where secrets are stored: table, its key column, the secret's column, and the owner a row's key makes.
_COLUMNS: tuple[tuple[str, str, str, Callable[[str], str]], ...] = (
    ("console_users", "username", "totp_secret", user_owner),
    ("console_sessions", "id_sha256", "pending_totp", session_owner),
)


def _stored(store: Store) -> list[tuple[int, str, str]]:
    """Every stored secret as (index in _COLUMNS, the row's key, the value)."""
    out: list[tuple[int, str, str]] = []
    with store.reader() as sql:
        for n, (table, key, column, _) in enumerate(_COLUMNS):
            rows = sql.query(f"SELECT {key} AS k, {column} AS v FROM {table} WHERE {column} IS NOT NULL")
            out += [(n, str(r["k"]), str(r["v"])) for r in rows]
    return out


def _load_key(path: Path, source: str) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
        key = base64.b64decode(text, validate=True)
    except OSError as exc:
        raise ConfigError(source, KEY_SETTING, f"cannot read {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, binascii.Error, ValueError):
        key = b""
    if len(key) != _KEY_BYTES:
        raise ConfigError(source, KEY_SETTING, f"{path} is not a TOTP key file (32 random bytes in base64)")
    return key


def _create_key(path: Path, source: str) -> bytes:
    key = secrets.token_bytes(_KEY_BYTES)
    try:
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:  # another process made it meanwhile: use that one
        return _load_key(path, source)
    except OSError as exc:
        raise ConfigError(source, KEY_SETTING, f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(base64.b64encode(key).decode("ascii") + "\n")
    log.info("console: created the TOTP key file %s (keep it with the audit signing key, out of database backups)",
             path)
    return key


def open_vault(store: Store, path: Path, source: str) -> TotpVault:
    """The console's vault, from the key file at `path` (`source` names the config for errors). Raises
    ConfigError, in one line, when the file is missing or is not the key the stored secrets were encrypted
    with. Secrets stored in the clear are encrypted here, in one transaction."""
    stored = _stored(store)
    sealed = [k for _, _, v in stored if (k := sealed_key_id(v)) is not None]
    if path.exists():
        vault = TotpVault(_load_key(path, source))
    elif sealed:
        raise ConfigError(source, KEY_SETTING, f"{path} not found, but {len(sealed)} TOTP secret(s) in the database "
                          f"were encrypted with key {sealed[0]}: restore that file (a new key cannot read them)")
    else:
        vault = TotpVault(_create_key(path, source))
    wrong = sorted({k for k in sealed if k != vault.key_id})
    if wrong:
        raise ConfigError(source, KEY_SETTING, f"{path} holds key {vault.key_id}, but the TOTP secrets in the "
                          f"database were encrypted with key {', '.join(wrong)}: restore the right file")
    plain = [(n, k, v) for n, k, v in stored if sealed_key_id(v) is None]
    if plain:
        with store.transaction() as tx:
            for n, row, value in plain:
                table, key, column, owner = _COLUMNS[n]
                tx.sql.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ? AND {column} = ?",
                               (vault.seal(value, owner(row)), row, value))
        log.info("console: encrypted %d TOTP secret(s) stored in the clear with the key in %s", len(plain), path)
    return vault
