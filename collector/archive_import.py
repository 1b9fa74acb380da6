"""`collector import ARCHIVE.zip`: an archive of `collector export` into a fresh store.

The store must be new (no migration applied yet) or hold nothing yet at the archive's own schema version.
It is migrated to the archive's migrations, every row goes in as exported (ids, hashes and all) in one
transaction, then any later migrations of this version run: an archive of an older linewarden imports
into a newer one. Each member is checked against the SHA-256 the manifest gives while it streams; any
mismatch or malformed line rolls everything back. RCA documents, dispute and e-signature evidence go to
the data directory where the collector looks for them; the contract and calendar files, the signed
checkpoints and their public key to `<data_dir>/imported/` (the config decides which contracts apply).
The import itself is the audit log's next entry (`archive.imported`), so the chain goes on unbroken.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from collector.audit import append_entry
from collector.exporter import ARCHIVE_SCHEMA, DATA_DIRS, MANIFEST, TABLE_SCHEMA
from collector.progress import Progress
from collector.store import Store, open_store
from collector.store.base import Sql
from collector.store.migrations import all_migrations
from linewarden.config.collector import CollectorConfig
from linewarden.errors import LinewardenError
from linewarden.files import FILE_MODE, private_dir

IMPORTED_DIR = "imported"
_BATCH = 500


class ArchiveRefused(LinewardenError):
    """Not imported: not an archive, a damaged one, or a store that is not fresh."""


@dataclass(frozen=True)
class ArchiveResult:
    rows: int
    tables: int
    files: int
    imported_dir: Path


def is_archive(path: Path) -> bool:
    return zipfile.is_zipfile(path)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _MemberInfo(_Lenient):
    name: str
    kind: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class _TableInfo(_Lenient):
    rows: int = Field(ge=0)
    columns: list[str]
    member: str


class _Manifest(_Lenient):
    schema_: str = Field(alias="schema")
    collector: str | None = None
    created_at_ms: int | None = None
    migrations: list[tuple[str, int]]
    tables: dict[str, _TableInfo]
    members: list[_MemberInfo]
    audit: dict[str, Any] = Field(default_factory=dict)


def _manifest(zf: zipfile.ZipFile) -> _Manifest:
    try:
        raw = json.loads(zf.read(MANIFEST))
    except KeyError:
        raise ArchiveRefused(f"no {MANIFEST}: not an archive of collector export") from None
    except ValueError:
        raise ArchiveRefused(f"{MANIFEST} is not JSON") from None
    if not isinstance(raw, dict) or raw.get("schema") != ARCHIVE_SCHEMA:
        raise ArchiveRefused(f"{MANIFEST} is not {ARCHIVE_SCHEMA}")
    try:
        manifest = _Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ArchiveRefused(f"{MANIFEST}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    names = {m.name for m in manifest.members}
    for table, info in manifest.tables.items():
        if info.member not in names:
            raise ArchiveRefused(f"{MANIFEST}: table {table}'s member {info.member!r} is not in the archive")
    return manifest


def _lines(zf: zipfile.ZipFile, member: _MemberInfo, progress: Progress) -> Iterator[bytes]:
    """The member's lines, streamed; at the end its SHA-256 and size must be the manifest's."""
    digest, size = hashlib.sha256(), 0
    try:
        with zf.open(member.name) as f:
            for line in f:
                digest.update(line)
                size += len(line)
                progress.advance(len(line), member.name)
                yield line
    except (KeyError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ArchiveRefused(f"{member.name}: cannot be read: {exc}") from None
    if digest.hexdigest() != member.sha256 or size != member.bytes:
        raise ArchiveRefused(f"{member.name}: its SHA-256 is not the manifest's: the archive is damaged")


def _copy(zf: zipfile.ZipFile, member: _MemberInfo, target: Path, progress: Progress) -> None:
    """Stream one file out (to `<target>.partial`, renamed once its SHA-256 held), 0600 in a 0700 folder."""
    private_dir(target.parent)
    partial = target.with_name(target.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as out:
            for line in _lines(zf, member, progress):
                out.write(line)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _target(data_dir: Path, name: str) -> Path | None:
    """Where a file member goes in the data directory (None: a table or CSV member)."""
    parts = name.split("/")
    if parts[0] not in ("files", "audit"):
        return None
    if any(p in ("", ".", "..") for p in parts) or len(parts) not in (2, 3):
        raise ArchiveRefused(f"{name}: not a plain file name")
    if parts[0] == "files" and len(parts) == 3 and parts[1] in DATA_DIRS:
        return data_dir / parts[1] / parts[2]
    return data_dir / IMPORTED_DIR / "/".join(parts[1:])


def import_archive(config: CollectorConfig, path: Path, now_ms: int,
                   progress_stream: IO[str] | None = None) -> ArchiveResult:
    """Raises ArchiveRefused, or OSError when the file cannot be read."""
    try:
        with zipfile.ZipFile(path) as zf:
            return _import(zf, config, path, now_ms, progress_stream)
    except zipfile.BadZipFile as exc:
        raise ArchiveRefused(f"not a readable zip archive: {exc}") from None


def _import(zf: zipfile.ZipFile, config: CollectorConfig, path: Path, now_ms: int,
            progress_stream: IO[str] | None) -> ArchiveResult:
    manifest = _manifest(zf)
    members = {m.name: m for m in manifest.members}
    wanted = set(manifest.migrations)
    known = {(m.component, m.version): m for m in all_migrations()}
    unknown = sorted(wanted - set(known))
    if unknown:
        raise ArchiveRefused(f"the archive's schema has migrations this linewarden does not know ({unknown}): "
                             "import it with the version that made it or a newer one")
    data_dir = config.collector.data_dir
    files = [(m, t) for m in members.values() if (t := _target(data_dir, m.name)) is not None]
    store = open_store(config, migrate=False)
    try:
        with store.reader() as sql:
            has = "schema_migrations" in store.table_names()
            applied = {(r["component"], int(r["version"])) for r in sql.query("SELECT * FROM schema_migrations")} \
                if has else set()  # fmt: skip
        if applied and applied != wanted:
            raise ArchiveRefused("the store was created already by another version: import into a new data "
                                 "directory or database")
        store.migrate([m for key, m in known.items() if key in wanted])
        total = sum(m.bytes for m in members.values() if m.kind != "csv")
        progress = Progress(total, "import", progress_stream)
        rows = 0
        tables = [t for t in sorted(manifest.tables) if t != "schema_migrations"]
        with store.transaction() as tx:
            for table in tables:
                if tx.sql.query(f"SELECT 1 AS x FROM {_table(store, table)} LIMIT 1"):
                    raise ArchiveRefused(f"the store is not empty (table {table} has rows): an archive goes "
                                         "into a fresh store")
            for member, target in files:  # inside the transaction: a damaged file leaves no rows behind
                _copy(zf, member, target, progress)
            for table in tables:
                rows += _load_table(tx.sql, store, table, members[manifest.tables[table].member], zf, progress)
            store.after_bulk_load(tx)
            append_entry(tx.sql, "import", socket.gethostname(), "archive.imported", f"archive/{path.name}",
                         {"file": path.name, "collector": manifest.collector, "rows": rows,
                          "created_at_ms": manifest.created_at_ms, "audit": manifest.audit},
                         now_ms)  # fmt: skip
        store.migrate()
    finally:
        store.close()
    progress.finish()
    return ArchiveResult(rows, len(manifest.tables), len(files), data_dir / IMPORTED_DIR)


def _table(store: Store, table: str) -> str:
    if table not in store.table_names():
        raise ArchiveRefused(f"the archive has table {table!r}, which this store does not")
    return table


def _load_table(sql: Sql, store: Store, table: str, member: _MemberInfo, zf: zipfile.ZipFile,
                progress: Progress) -> int:
    lines = _lines(zf, member, progress)
    try:
        header = json.loads(next(lines))
    except (StopIteration, ValueError):
        raise ArchiveRefused(f"{member.name}: no header line") from None
    if not isinstance(header, dict) or header.get("schema") != TABLE_SCHEMA or header.get("table") != table:
        raise ArchiveRefused(f"{member.name}: its header is not {TABLE_SCHEMA} of table {table}")
    columns = [str(c) for c in header["columns"]]
    missing = set(columns) - set(store.table_columns(table))
    if missing:
        raise ArchiveRefused(f"{member.name}: columns {sorted(missing)} are not in this store's {table}")
    statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    batch: list[list[Any]] = []
    count = 0
    for number, line in enumerate(lines, start=2):
        try:
            row = json.loads(line)
            batch.append([row[c] for c in columns])
        except (ValueError, KeyError, TypeError):
            raise ArchiveRefused(f"{member.name}:{number}: not a row of {table}") from None
        if len(batch) >= _BATCH:
            sql.execute_many(statement, batch)
            count, batch = count + len(batch), []
    sql.execute_many(statement, batch)
    return count + len(batch)
