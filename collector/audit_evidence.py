"""Evidence for the audit log that lives outside the database: an Ed25519 key and signed checkpoints.

A checkpoint says "the audit log had `count` entries and entry `count` had hash `head` at `at_ms`", signed
with the collector's Ed25519 key. The key file and the checkpoint file (JSON Lines, appended to, never
rewritten) are kept outside the database, and the latest checkpoint goes out with every SLA report, so a
vendor holds it too. Whoever can write the database but not the key can still re-chain the entries, but no
longer so that they match a checkpoint: `verify_entries` names every checkpoint the entries contradict.

Nothing here opens a database or reads a config: an exported log verifies with the public key alone.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import logging
import logging.handlers
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from collector.audit import AuditLog, canonical_json, chain_break
from linewarden.config.collector import CollectorConfig
from linewarden.errors import LinewardenError
from linewarden.files import DIR_MODE, FILE_MODE
from linewarden.timeutil import ms_to_dt

SCHEMA = "linewarden.audit-checkpoint/1"
CSV_COLUMNS = ("schema", "count", "head", "at", "at_ms", "collector", "key_id", "signature")
"""The columns of a checkpoint as a CSV table (the report tables' `audit_checkpoint.csv`)."""


class EvidenceError(LinewardenError):
    """A key or checkpoint file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class Checkpoint:
    count: int
    head: str
    at_ms: int
    collector: str
    key_id: str
    signature: str = ""

    def body(self) -> dict[str, Any]:
        """What the signature covers."""
        return {"schema": SCHEMA, "count": self.count, "head": self.head, "at_ms": self.at_ms,
                "collector": self.collector, "key_id": self.key_id}

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "at": _iso(self.at_ms), "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Any) -> Checkpoint:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise EvidenceError(f"not a checkpoint ({SCHEMA})")
        try:
            cp = cls(int(data["count"]), str(data["head"]), int(data["at_ms"]), str(data["collector"]),
                     str(data["key_id"]), str(data["signature"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise EvidenceError(f"checkpoint field missing or malformed: {exc}") from None
        if cp.count < 0:
            raise EvidenceError("checkpoint count is negative")
        return cp


def _iso(ms: int) -> str:
    return ms_to_dt(ms).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------- keys


def key_id(public: Ed25519PublicKey) -> str:
    """The first 16 hex digits of the SHA-256 of the raw public key: names the key in every checkpoint."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name + ".pub")


def generate_key(path: Path) -> Ed25519PublicKey:
    """Write a new private key to `path` (0600, in a 0700 folder if it creates one; never over an existing
    file) and its public key next to it as `<path>.pub`, the file to hand to vendors and auditors."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        raise EvidenceError(f"{path} exists: refusing to replace a signing key") from None
    except OSError as exc:
        raise EvidenceError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public = key.public_key()
    public_key_path(path).write_bytes(
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return public


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise EvidenceError(f"cannot read {path}: {exc.strerror}") from None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError):
        raise EvidenceError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EvidenceError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key file, or the public half of a private key file."""
    data = _read(path)
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise EvidenceError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise EvidenceError(f"{path} is not an Ed25519 key")
    return key


# ---------------------------------------------------------------- checkpoints


def sign(key: Ed25519PrivateKey, count: int, head: str, at_ms: int, collector: str) -> Checkpoint:
    unsigned = Checkpoint(count, head, at_ms, collector, key_id(key.public_key()))
    signature = key.sign(canonical_json(unsigned.body()).encode("utf-8"))
    return Checkpoint(count, head, at_ms, collector, unsigned.key_id, base64.b64encode(signature).decode("ascii"))


def signature_holds(cp: Checkpoint, public: Ed25519PublicKey) -> bool:
    try:
        public.verify(base64.b64decode(cp.signature, validate=True), canonical_json(cp.body()).encode("utf-8"))
    except (InvalidSignature, ValueError):
        return False
    return True


def append_checkpoint(path: Path, cp: Checkpoint) -> None:
    """Append one line (the file is created 0600) and flush it to disk before returning."""
    try:
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(canonical_json(cp.to_dict()) + "\n")
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        raise EvidenceError(f"cannot append to {path}: {exc.strerror}") from None


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """Every checkpoint in the file, oldest first ([] when the file does not exist)."""
    if not path.exists():
        return []
    out: list[Checkpoint] = []
    for number, line in enumerate(_read(path).decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(Checkpoint.from_dict(json.loads(line)))
        except (ValueError, EvidenceError) as exc:
            raise EvidenceError(f"{path}:{number}: {exc}") from None
    return out


def latest_checkpoint(path: Path) -> Checkpoint | None:
    """The last well-formed checkpoint in the file, or None (for reports: a damaged line must not stop
    them; `read_checkpoints`, which verification uses, names it)."""
    try:
        lines = _read(path).decode("utf-8", "replace").splitlines() if path.exists() else []
    except EvidenceError:
        return None
    for line in reversed(lines):
        try:
            return Checkpoint.from_dict(json.loads(line))
        except (ValueError, EvidenceError):
            continue
    return None


def send_to_syslog(cp: Checkpoint, address: str) -> None:
    """One line to syslog (facility auth): `/dev/log`-style socket path or `host:port` (UDP)."""
    host, _, port = address.rpartition(":")
    target: str | tuple[str, int] = (host, int(port)) if host and port.isdigit() else address
    handler = logging.handlers.SysLogHandler(target, facility=logging.handlers.SysLogHandler.LOG_AUTH)
    try:
        record = logging.LogRecord("linewarden.audit", logging.INFO, __file__, 0, "linewarden audit checkpoint %s",
                                   (canonical_json(cp.to_dict()),), None)
        handler.emit(record)
    finally:
        handler.close()


# ---------------------------------------------------------------- verification


def verify_entries(
    entries: Sequence[Mapping[str, Any]], checkpoints: Iterable[Checkpoint], public: Ed25519PublicKey | None
) -> list[str]:
    """Every problem found, in words (empty: intact). Each checkpoint must carry a good signature by
    `public` (when given) and match the entries: as many of them at least, and entry `count` with its head."""
    problems: list[str] = []
    broken = chain_break(entries)
    if broken is not None:
        problems.append(f"hash chain broken at entry {broken} (edited, deleted, inserted or reordered)")
    for cp in checkpoints:
        when = f"checkpoint of {_iso(cp.at_ms)} ({cp.count} entries)"
        if public is not None and (cp.key_id != key_id(public) or not signature_holds(cp, public)):
            problems.append(f"{when}: signature does not hold for this public key (forged or another key)")
            continue
        if cp.count > len(entries):
            problems.append(f"{when}: the log has only {len(entries)} entries: truncated or emptied")
        elif cp.count > 0 and entries[cp.count - 1].get("hash") != cp.head:
            problems.append(
                f"{when}: entry {cp.count} does not have the signed head hash: entries up to it were "
                "rewritten, deleted, inserted or reordered"
            )
    return problems


def entry_dicts(lines: Iterable[str]) -> tuple[list[dict[str, Any]], list[Checkpoint]]:
    """An exported log's entries and checkpoints (lines `{"checkpoint": {...}}`). Raises EvidenceError."""
    entries: list[dict[str, Any]] = []
    checkpoints: list[Checkpoint] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            raise EvidenceError(f"line {number}: not JSON") from None
        if isinstance(data, dict) and "checkpoint" in data:
            try:
                checkpoints.append(Checkpoint.from_dict(data["checkpoint"]))
            except EvidenceError as exc:
                raise EvidenceError(f"line {number}: {exc}") from None
        elif isinstance(data, dict):
            entries.append(data)
        else:
            raise EvidenceError(f"line {number}: not an audit entry")
    return entries, checkpoints


def read_anchors(path: Path) -> list[Checkpoint]:
    """Checkpoints a party kept: SLA reports as JSON (their `audit_checkpoint`), one checkpoint as JSON,
    JSON Lines of checkpoints (the collector's checkpoint file), or the reports' `audit_checkpoint.csv`.
    Raises EvidenceError."""
    text = _read(path).decode("utf-8-sig", "replace")
    if text.startswith(",".join(CSV_COLUMNS[:3])):
        return [Checkpoint.from_dict({k: _uncell(v) for k, v in row.items()})
                for row in csv.DictReader(text.splitlines())]
    try:
        whole = json.loads(text)
    except ValueError:
        return [cp for line in text.splitlines() if line.strip() for cp in _anchor(_json_line(line))]
    return [cp for item in (whole if isinstance(whole, list) else [whole]) for cp in _anchor(item)]


def _uncell(value: str) -> str:
    """A CSV cell as written: the report tables put an apostrophe before a leading = + - @ (a base64
    signature may start with +) so that no spreadsheet takes it for a formula."""
    return value[1:] if value[:1] == "'" and value[1:2] in ("=", "+", "-", "@") else value


def _json_line(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        raise EvidenceError("not JSON, nor JSON Lines") from None


def _anchor(item: Any) -> list[Checkpoint]:
    if isinstance(item, dict) and "audit_checkpoint" in item:  # an SLA report
        return [] if item["audit_checkpoint"] is None else [Checkpoint.from_dict(item["audit_checkpoint"])]
    if isinstance(item, dict) and "checkpoint" in item:
        return [Checkpoint.from_dict(item["checkpoint"])]
    return [Checkpoint.from_dict(item)]


# ---------------------------------------------------------------- the collector's log


def take_checkpoint(log: AuditLog, key: Ed25519PrivateKey, collector: str, now_ms: int) -> Checkpoint:
    count, head = log.count_and_head()
    return sign(key, count, head, now_ms, collector)


def verify_log(log: AuditLog, checkpoints: Iterable[Checkpoint], public: Ed25519PublicKey | None) -> list[str]:
    return verify_entries(log.rows(), checkpoints, public)


class Checkpointer:
    """Writes the collector's checkpoints where its config says: the file, and syslog when configured."""

    def __init__(self, key: Ed25519PrivateKey, path: Path, collector: str, syslog: str | None = None) -> None:
        self.key = key
        self.path = path
        self.collector = collector
        self.syslog = syslog

    def checkpoint(self, log: AuditLog, now_ms: int, only_if_moved: bool = False) -> Checkpoint | None:
        """Sign the log's head and record it; with `only_if_moved`, nothing (None) when the latest checkpoint
        already has this head and count."""
        cp = take_checkpoint(log, self.key, self.collector, now_ms)
        last = latest_checkpoint(self.path) if only_if_moved else None
        if last is not None and (last.count, last.head, last.key_id) == (cp.count, cp.head, cp.key_id):
            return None
        append_checkpoint(self.path, cp)
        if self.syslog:
            try:
                send_to_syslog(cp, self.syslog)
            except OSError as exc:
                raise EvidenceError(f"checkpoint in {self.path}, but not sent to syslog {self.syslog}: {exc}") from None
        return cp


def checkpointer_for(config: CollectorConfig) -> Checkpointer | None:
    """The collector's checkpointer, or None when its config names no signing key."""
    if config.audit.signing_key is None:
        return None
    key = load_private_key(config.audit.signing_key)
    return Checkpointer(key, config.checkpoint_file, config.collector.id, config.audit.syslog)
