"""History import: a JSON Lines file into the store, all good lines in one transaction.

A bad line is reported with its number and reason and skipped; the good lines go in together or, if the
database fails, not at all. Importing the same file twice adds nothing the second time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from collector.records import (
    ImportedEvent,
    ImportRecord,
    MaintenanceWindowRecord,
    MonitoringGapRecord,
    TicketTriaged,
    parse_line,
)
from collector.store.base import Store, Writer
from linewarden.errors import WireError
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


def parse_lines(lines: Iterable[bytes]) -> tuple[list[ImportRecord], list[BadLine]]:
    good: list[ImportRecord] = []
    bad: list[BadLine] = []
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8")
            if line.strip():
                good.append(parse_line(line))
        except UnicodeDecodeError:
            bad.append(BadLine(number, "not UTF-8 text"))
        except WireError as exc:
            bad.append(BadLine(number, str(exc)))
    return good, bad


def _apply(tx: Writer, record: ImportRecord, received_at: int) -> bool:
    if isinstance(record, ImportedEvent):
        return tx.insert_event(record.site, record.agent, record.epoch, record.boot, record.event, received_at)
    if isinstance(record, MaintenanceWindowRecord):
        window = MaintenanceWindowWire(**record.model_dump(exclude={"record", "site", "cancelled_at"}))
        return tx.add_maintenance_window(record.site, window, record.cancelled_at)
    if isinstance(record, MonitoringGapRecord):
        return tx.add_gap(record.site, record.agent, record.start, record.end, record.reason)
    details = dict(record.details)
    if isinstance(record, TicketTriaged):
        details["severity"] = record.severity.value
    return tx.add_ticket_record(record.incident, record.record, record.at, record.actor, details, SOURCE)


def import_lines(store: Store, lines: Iterable[bytes], received_at: int) -> ImportResult:
    records, bad = parse_lines(lines)
    result = ImportResult(bad=bad)
    with store.transaction() as tx:
        epochs: set[tuple[str, str, str]] = set()
        for record in records:
            if _apply(tx, record, received_at):
                result.imported += 1
            else:
                result.duplicates += 1
            if isinstance(record, ImportedEvent):
                epochs.add((record.site, record.agent, record.epoch))
        for site, agent, epoch in sorted(epochs):
            tx.advance_ack(site, agent, epoch)
    return result


def import_file(store: Store, path: Path, received_at: int) -> ImportResult:
    """Raises OSError when the file cannot be read."""
    with path.open("rb") as f:
        return import_lines(store, f, received_at)
