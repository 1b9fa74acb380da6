"""History import: a JSON Lines file into the store, all good lines in one transaction.

A bad line is reported with its number and reason and skipped; the good lines go in together or, if the
database fails, not at all. Importing the same file twice adds nothing the second time.

Maintenance windows go in after the file's other records, so a window may name assets the same file
introduces; a window that covers nothing, or announced after the import, is a bad line. An imported window
keeps its announcement time: when that is before the import, the window is back-dated (reason "imported
history"), audit-logged and flagged as such in reports.

Imported events pass the same admission rules as live ones (`collector.admission`) but for the registry: an
old tool never sent a birth, so an event may name a target no target list declared (its asset is then the one
the event names, else the target id). Target lists (`targets` records) are applied before every other line,
so a registered target's events take the registry's asset whatever the line order.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from collector import admission
from collector.audit import append_entry
from collector.maintenance import IMPORTED, SiteAsset, check_covers, site_assets
from collector.progress import Progress
from collector.records import (
    ImportedEvent,
    ImportRecord,
    MaintenanceWindowRecord,
    MonitoringGapRecord,
    TargetsRecord,
    TicketTriaged,
    parse_line,
)
from collector.store.base import Store, Writer
from linewarden.book import ContractBook
from linewarden.errors import MaintenanceRefused, WireError
from linewarden.wire import MaintenanceWindowWire

SOURCE = "import"


@dataclass(frozen=True)
class BadLine:
    number: int
    reason: str


@dataclass
class ImportResult:
    imported: int = 0
    duplicates: int = 0
    bad: list[BadLine] = field(default_factory=list)


def parse_lines(lines: Iterable[bytes]) -> tuple[list[tuple[int, ImportRecord]], list[BadLine]]:
    """The good lines with their numbers, and the bad ones."""
    good: list[tuple[int, ImportRecord]] = []
    bad: list[BadLine] = []
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8")
            if line.strip():
                good.append((number, parse_line(line)))
        except UnicodeDecodeError:
            bad.append(BadLine(number, "not UTF-8 text"))
        except WireError as exc:
            bad.append(BadLine(number, str(exc)))
    return good, bad


def _apply_window(
    tx: Writer, record: MaintenanceWindowRecord, received_at: int, book: ContractBook | None,
    known: dict[str, list[SiteAsset]],
) -> bool:
    """Record one imported window (MaintenanceRefused when it covers nothing); False when it is there already.
    `known` caches each site's assets for the windows of one import."""
    if record.announced_at > received_at:
        raise MaintenanceRefused("an announcement cannot be dated after the collector received it (the import)")
    back_dated = record.announced_at < received_at
    window = MaintenanceWindowWire(
        **record.model_dump(exclude={"record", "site", "cancelled_at"}), back_dated=back_dated
    )
    if record.site not in known:
        known[record.site] = site_assets(tx.sql, record.site)
    check_covers(window, record.site, known[record.site], book)
    reason = IMPORTED if back_dated else ""
    if not tx.add_maintenance_window(record.site, window, record.cancelled_at, received_at, reason):
        return False
    obj, origin = f"window/{window.id}", socket.gethostname()
    details = {"site": record.site, **msgspec.to_builtins(window), "received_at": received_at}
    append_entry(tx.sql, SOURCE, origin, "maintenance.recorded", obj, details, received_at)
    if back_dated:
        append_entry(tx.sql, SOURCE, origin, "maintenance.backdated", obj,
                     {"announced_at": window.announced_at, "received_at": received_at, "reason": reason},
                     received_at)  # fmt: skip
    return True


def _apply(tx: Writer, record: ImportRecord, received_at: int) -> bool:
    if isinstance(record, ImportedEvent):
        return tx.insert_event(record.site, record.agent, record.epoch, record.boot, record.event, received_at)
    if isinstance(record, MonitoringGapRecord):
        return tx.add_gap(record.site, record.agent, record.start, record.end, record.reason)
    assert not isinstance(record, MaintenanceWindowRecord), "windows go in last, through _apply_window"
    if isinstance(record, TargetsRecord):
        return tx.register_targets(record.site, record.agent, record.targets, record.at, newer_only=True)
    details = dict(record.details)
    if isinstance(record, TicketTriaged):
        details["severity"] = record.severity.value
    return tx.add_ticket_record(record.incident, record.record, record.at, record.actor, details, SOURCE)


def _refusal(tx: Writer, record: ImportRecord) -> str | None:
    """Why an imported event may not be stored (it touches what its agent does not own), or None."""
    if not isinstance(record, ImportedEvent):
        return None
    verdict = admission.screen(tx, record.site, record.agent, record.epoch, [record.event], False, None)
    if verdict.refused:
        return f"{record.event.type}: {verdict.refused[0][1]}"
    return None if verdict.admitted else f"{record.event.type}: this seq was received and refused before"


def import_lines(
    store: Store,
    lines: Iterable[bytes],
    received_at: int,
    book: ContractBook | None = None,
    source: Mapping[str, Any] | None = None,
) -> ImportResult:
    """`book`: the contracts, to check the services a window names (without it they are taken as named).
    One audit entry `import.applied` records the import, with its counts and `source` (file name, SHA-256)."""
    numbered, bad = parse_lines(lines)
    records = [(n, r) for n, r in numbered if not isinstance(r, MaintenanceWindowRecord)]
    windows = [(n, r) for n, r in numbered if isinstance(r, MaintenanceWindowRecord)]
    result = ImportResult(bad=bad)
    records.sort(key=lambda line: not isinstance(line[1], TargetsRecord))  # stable: target lists first
    with store.transaction() as tx:
        epochs: set[tuple[str, str, str]] = set()
        for number, record in records:
            refusal = _refusal(tx, record)
            if refusal is not None:
                result.bad.append(BadLine(number, refusal))
            elif _apply(tx, record, received_at):
                result.imported += 1
            else:
                result.duplicates += 1
            if isinstance(record, ImportedEvent):
                epochs.add((record.site, record.agent, record.epoch))
        for site, agent, epoch in sorted(epochs):
            tx.advance_ack(site, agent, epoch)
        known: dict[str, list[SiteAsset]] = {}
        for number, window in windows:
            try:
                added = _apply_window(tx, window, received_at, book, known)
            except MaintenanceRefused as exc:
                result.bad.append(BadLine(number, f"maintenance_window {window.id}: {exc}"))
                continue
            result.imported += added
            result.duplicates += not added
        result.bad.sort(key=lambda b: b.number)
        details = {**(source or {}), "imported": result.imported, "duplicates": result.duplicates,
                   "skipped": len(result.bad)}
        obj = f"import/{details['sha256']}" if "sha256" in details else "import"
        append_entry(tx.sql, SOURCE, socket.gethostname(), "import.applied", obj, details, received_at)
    return result


def import_file(store: Store, path: Path, received_at: int, book: ContractBook | None = None,
                progress_stream: IO[str] | None = None) -> ImportResult:
    """Raises OSError when the file cannot be read. A progress bar goes to `progress_stream` (default standard
    error) when it is a terminal."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:  # a year of a plant's history need not fit in memory: hash it, then stream it
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    source = {"file": path.name, "sha256": digest.hexdigest(), "bytes": size}
    progress = Progress(size, "import", progress_stream)

    def counted(lines: Iterable[bytes]) -> Iterator[bytes]:
        for line in lines:
            progress.advance(len(line), path.name)
            yield line

    with path.open("rb") as f:
        result = import_lines(store, counted(f), received_at, book, source)
    progress.finish()
    return result
