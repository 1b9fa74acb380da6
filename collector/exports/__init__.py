"""Exports of the monthly report: the vendor review as a PDF, and each report table as its own CSV.

    monthly_review_pdf(store, book, month, contract, as_of_ms, now_ms, checkpoint=cp) -> bytes
    report_csv_tables(store, book, month, contract, as_of_ms, now_ms, checkpoint=cp) -> dict[str, str]
    csv_tables(reports, cp) -> dict[str, str]  # for reports already computed (e.g. filtered for a vendor)
    tables_zip(tables) -> bytes                # every table as <name>.csv in one zip
    TABLES                                     # the table names and their columns

`month` is "YYYY-MM"; `as_of_ms` None means as `collector.reporting.reports` decides (now for a month not
over yet, else its end). The figures are those of the JSON report of the same arguments. `cp` is the audit
log's latest signed checkpoint (None: none written yet): every export carries it, as the JSON report does.
"""

from __future__ import annotations

from collector.audit_evidence import Checkpoint
from collector.exports.pdf import render
from collector.exports.tables import TABLES, csv_tables, tables_zip
from collector.reporting import reports
from collector.store import Store
from linewarden.book import ContractBook
from linewarden.sla.report import ContractReport

__all__ = ["TABLES", "csv_tables", "monthly_review_pdf", "report_csv_tables", "tables_zip", "trend_months"]


def trend_months(month: str, count: int = 12) -> list[str]:
    """The `count` months ending with `month`, oldest first: '2026-03' → ['2025-04', …, '2026-03']."""
    year, no = int(month[:4]), int(month[5:7])
    out = []
    for back in range(count - 1, -1, -1):
        index = year * 12 + no - 1 - back
        out.append(f"{index // 12:04d}-{index % 12 + 1:02d}")
    return out


def _trend(
    store: Store, book: ContractBook, month: str, contract: str, as_of_ms: int | None, now_ms: int
) -> list[ContractReport]:
    return [reports(store, book, m, contract, as_of_ms, now_ms)[0] for m in trend_months(month)]


def monthly_review_pdf(
    store: Store, book: ContractBook, month: str, contract: str, as_of_ms: int | None, now_ms: int, *,
    checkpoint: Checkpoint | None,
) -> bytes:
    """The monthly vendor review of one contract as a PDF. Raises ValueError (bad month, as_of later than
    now) and ConfigError (no such contract)."""
    book.contract(contract)
    trend = _trend(store, book, month, contract, as_of_ms, now_ms)
    return render(trend[-1], trend, now_ms, checkpoint)


def report_csv_tables(
    store: Store, book: ContractBook, month: str, contract: str | None, as_of_ms: int | None, now_ms: int, *,
    checkpoint: Checkpoint | None,
) -> dict[str, str]:
    """Each report table (TABLES) as one CSV, over the contract named or all of them."""
    return csv_tables(reports(store, book, month, contract, as_of_ms, now_ms), checkpoint)
