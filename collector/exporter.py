"""`collector export`: the whole collector in one archive, for a termination's data extraction or a move.

The archive is a zip (ZIP64, deflated), written member by member and never held in memory:
- `tables/<table>.jsonl`: every row of every table as of one consistent moment. The first line describes
  the file, `{"schema": "linewarden.table-rows/1", "table": …, "columns": […]}`; each following line is one
  row, `{column: value}`, values as stored (times int ms since the Unix epoch, UTC; JSON columns as JSON text);
- `csv/<table>.csv` with `--csv`: the same rows for a spreadsheet;
- `files/contracts/…`, `files/calendars/…`: the contract and calendar files the config names;
- `files/rca/…`, `files/evidence/…`, `files/esign/…`: RCA documents, dispute evidence, e-signature evidence;
- `audit/checkpoints.jsonl` and `audit/signing-key.pub`: the signed checkpoints and the key that checks them
  (never the private key);
- `manifest.json`, last: `linewarden.archive/1`, the applied migrations, each member's SHA-256 and size,
  each table's row count and columns, the audit log's length and head and the latest checkpoint.

`collector import` (collector/archive_import.py) reads it back into a fresh store.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from collector.audit_evidence import latest_checkpoint, public_key_path
from collector.progress import Progress
from collector.store.base import Store
from linewarden.book import config_files
from linewarden.config.collector import CollectorConfig

ARCHIVE_SCHEMA = "linewarden.archive/1"
TABLE_SCHEMA = "linewarden.table-rows/1"
MANIFEST = "manifest.json"
DATA_DIRS = ("rca", "evidence", "esign")
_CHUNK = 1 << 20


def table_header(table: str, columns: list[str]) -> str:
    """The first line of a table's rows file: what the lines after it are."""
    return json.dumps({"schema": TABLE_SCHEMA, "table": table, "columns": columns}) + "\n"


def row_line(row: Mapping[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"


class _Member:
    """One member being written: counts and hashes what goes through."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out, self.sha256, self.bytes = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> None:
        self._out.write(data)
        self.sha256.update(data)
        self.bytes += len(data)


class _Archive:
    def __init__(self, zf: zipfile.ZipFile) -> None:
        self.zf = zf
        self.members: list[dict[str, Any]] = []

    def member(self, name: str, kind: str, write: Any) -> dict[str, Any]:
        with self.zf.open(name, "w", force_zip64=True) as out:
            m = _Member(out)
            write(m)
        entry = {"name": name, "kind": kind, "sha256": m.sha256.hexdigest(), "bytes": m.bytes}
        self.members.append(entry)
        return entry

    def file(self, name: str, kind: str, path: Path, progress: Progress) -> None:
        def copy(m: _Member) -> None:
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(_CHUNK), b""):
                    m.write(chunk)
                    progress.advance(len(chunk), name)

        self.member(name, kind, copy)


def _data_files(data_dir: Path) -> Iterator[tuple[str, Path]]:
    for sub in DATA_DIRS:
        folder = data_dir / sub
        if folder.is_dir():
            for path in sorted(p for p in folder.iterdir() if p.is_file()):
                yield f"files/{sub}/{path.name}", path


def export_archive(store: Store, config: CollectorConfig, config_path: Path, out: Path, now_ms: int,
                   with_csv: bool = False, progress_stream: IO[str] | None = None) -> dict[str, Any]:
    """Write the archive to `out` (created 0600); return its manifest. Raises OSError when it cannot."""
    named = config_files(config, config_path)
    files = [(f"files/{kind}/{p.name}", p) for kind in ("contracts", "calendars") for p in named[kind]]
    files += list(_data_files(config.collector.data_dir))
    checkpoints = config.checkpoint_file
    if checkpoints.is_file():
        files.append(("audit/checkpoints.jsonl", checkpoints))
    if config.audit.signing_key is not None and public_key_path(config.audit.signing_key).is_file():
        files.append(("audit/signing-key.pub", public_key_path(config.audit.signing_key)))
    partial = out.with_name(out.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        manifest = _write(os.fdopen(fd, "wb"), store, config, files, now_ms, with_csv, progress_stream)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return manifest


def _write(raw: IO[bytes], store: Store, config: CollectorConfig, files: list[tuple[str, Path]], now_ms: int,
           with_csv: bool, progress_stream: IO[str] | None) -> dict[str, Any]:
    checkpoints = config.checkpoint_file
    with raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf, store.snapshot() as snap:
        archive = _Archive(zf)
        tables = sorted(store.table_names())
        counts = {t: snap.count(t) for t in tables}
        file_bytes = sum(p.stat().st_size for _, p in files)
        progress = Progress(sum(counts.values()) * (2 if with_csv else 1) + file_bytes, "export",
                            progress_stream)  # fmt: skip
        described: dict[str, Any] = {}
        for table in tables:
            columns = store.table_columns(table)

            def rows(m: _Member, table: str = table, columns: list[str] = columns) -> None:
                m.write(table_header(table, columns).encode())
                for row in snap.rows(table):
                    m.write(row_line(row).encode("utf-8"))
                    progress.advance(1, table)

            entry = archive.member(f"tables/{table}.jsonl", "table", rows)
            described[table] = {"rows": counts[table], "columns": columns, "member": entry["name"]}
            if with_csv:
                def as_csv(m: _Member, table: str = table, columns: list[str] = columns) -> None:
                    writer = csv.DictWriter(_Text(m), fieldnames=columns, lineterminator="\r\n")
                    writer.writeheader()
                    for row in snap.rows(table):
                        writer.writerow(row)
                        progress.advance(1, table)

                archive.member(f"csv/{table}.csv", "csv", as_csv)
        for name, path in files:
            archive.file(name, name.split("/")[1] if name.startswith("files/") else "audit", path, progress)
        head: tuple[int, str | None] = (0, None)
        for r in snap.rows("audit_log") if "audit_log" in tables else ():
            head = max(head, (int(r["id"]), str(r["hash"])), key=lambda h: h[0])
        latest = latest_checkpoint(checkpoints)
        manifest = {
            "schema": ARCHIVE_SCHEMA, "created_at_ms": now_ms, "collector": config.collector.id,
            "migrations": [[r["component"], int(r["version"])] for r in snap.rows("schema_migrations")],
            "tables": described, "members": archive.members,
            "audit": {"entries": counts.get("audit_log", 0), "head": head[1],
                      "latest_checkpoint": None if latest is None else latest.to_dict()},
        }
        zf.writestr(MANIFEST, json.dumps(manifest, indent=2))
        progress.finish()
    return manifest


class _Text:
    """Text into a member, UTF-8, for the csv module."""

    def __init__(self, member: _Member) -> None:
        self._member = member

    def write(self, text: str) -> int:
        self._member.write(text.encode("utf-8"))
        return len(text)
