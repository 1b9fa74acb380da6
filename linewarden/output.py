"""Render rows as a table, JSON or CSV for every CLI command with tabular output.

One style everywhere: times are ISO 8601 with their zone's offset, to the second
(`2026-12-05T06:00:00+01:00`; `iso_time` makes them from epoch ms), booleans are `yes`/`no` in tables
and CSV and true/false in JSON.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

Format = Literal["table", "json", "csv"]
FORMATS: tuple[Format, ...] = ("table", "json", "csv")


def iso_time(ms: int | None, tz: str | None = None) -> str | None:
    """Epoch ms as ISO 8601 to the second with the offset of `tz` (an IANA name; default UTC)."""
    if ms is None:
        return None
    at = datetime.fromtimestamp(ms / 1000, UTC)
    return (at.astimezone(ZoneInfo(tz)) if tz else at).isoformat(timespec="seconds")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def render(rows: Sequence[Mapping[str, Any]], fmt: Format, columns: Sequence[str] | None = None) -> str:
    cols = list(columns) if columns is not None else (list(rows[0].keys()) if rows else [])
    if fmt == "json":
        return json.dumps([{c: r.get(c) for c in cols} for r in rows], indent=2, default=str)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(cols)
        for r in rows:
            writer.writerow([_cell(r.get(c)) for c in cols])
        return buf.getvalue().rstrip("\n")
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)
