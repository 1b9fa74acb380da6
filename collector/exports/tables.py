"""Report tables as CSV: one table per file, one header row and one row per record, that a spreadsheet
opens as it is (RFC 4180, comma, CRLF line ends, UTF-8). Every row names its contract, so the tables of
several contracts stack into one file. Times are local to each contract's time zone, as in the table
output of `linewarden collector report`. The one table of no contract is `audit_checkpoint`: the audit
log's latest signed checkpoint as the reports went out (no row when none was written yet), in the columns
`linewarden audit verify-export --anchors` reads back.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from collector.audit_evidence import CSV_COLUMNS, Checkpoint
from collector.reporting import iter_sections
from linewarden.sla.report import ContractReport
from linewarden.timeutil import ms_to_dt

# The columns of each table, in order; a column a row has beyond these is appended.
TABLES: dict[str, tuple[str, ...]] = {
    "period": ("contract", "period", "start", "end", "as_of", "partial", "note"),
    "uptime": ("contract", "scope", "coverage", "target_pct", "covered_s", "excluded_s", "observed_pct", "observed",
               "gaps", "downtime_s", "uptime_pct", "met"),
    "incidents": ("contract", "incident", "asset", "severity", "vendor_severity", "opened", "notified",
                  "acknowledged", "restored", "response_s", "response_met", "resolution_s", "resolution_met",
                  "recurring", "rca", "disputed"),
    "exclusions": ("contract", "scope", "asset", "kind", "start", "end", "excluded_s", "note"),
    "credits": ("contract", "kind", "ref", "detail", "fee_pct", "amount"),
    "scorecard": ("contract", "vendor", "uptime_met", "incidents", "mtta_s", "mttr_s", "recurrence_pct",
                  "rca_on_time", "unapproved_changes", "credits", "score", "S1_resp_pct", "S2_resp_pct",
                  "S3_resp_pct", "S4_resp_pct"),
    "disputes": ("contract", "dispute", "incident", "field", "state", "disputed", "proposed", "reason", "opened",
                 "outcome", "settled", "settle_reason", "settled_at"),
    "patch_changes": ("contract", "asset", "what", "old", "new", "at", "finding", "rollback", "staging",
                      "staging_since", "staged", "required", "window", "change_ref"),
    "remote_sessions": ("contract", "gateway", "session", "user", "from", "asset", "start", "end", "ticket",
                        "windows", "uncovered", "flag"),
    "audit_checkpoint": CSV_COLUMNS,
}  # fmt: skip


def local_time(timezone: str) -> Callable[[int | None], str | None]:
    tz = ZoneInfo(timezone)

    def fmt(ms: int | None) -> str | None:
        return None if ms is None else ms_to_dt(ms).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")

    return fmt


def table_rows(reports: Sequence[ContractReport], checkpoint: Checkpoint | None) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows over `reports`, by table name (the names of TABLES)."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    for report in reports:
        for name, rows in iter_sections(report, local_time(report.timezone)):
            out.setdefault(name, []).extend(rows)
    if checkpoint is not None:
        out["audit_checkpoint"] = [{k: checkpoint.to_dict()[k] for k in CSV_COLUMNS}]
    return out


def _csv(name: str, rows: list[dict[str, Any]]) -> str:
    columns = list(TABLES.get(name, ()))
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else _cell(v) for k, v in row.items()})
    return buf.getvalue()


def _cell(value: Any) -> str:
    text = str(value)
    # a vendor's text starting with = + - @ would run as a formula in a spreadsheet
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_tables(reports: Sequence[ContractReport], checkpoint: Checkpoint | None) -> dict[str, str]:
    """Each table of `reports` as one CSV document, by table name; `checkpoint` is the audit log's latest
    signed checkpoint, sent with every report."""
    return {name: _csv(name, rows) for name, rows in table_rows(reports, checkpoint).items()}


def tables_zip(tables: dict[str, str]) -> bytes:
    """The tables as one zip of `<name>.csv` files."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in tables.items():
            z.writestr(zipfile.ZipInfo(f"{name}.csv", date_time=(2000, 1, 1, 0, 0, 0)), text.encode("utf-8"))
    return buf.getvalue()
