"""Export time: the monthly review PDF and the CSV tables of one contract, against the bare reports.

    .venv/bin/python bench/review_export.py [--assets 1000] [--days 365]

Builds the store of bench/report_time.py (same data, same contract), then times, for the last full month:
the bare `reports()` of that month, the twelve reports the review's trend needs, `monthly_review_pdf`
(those twelve reports plus the layout), the layout alone (`render`), and `report_csv_tables`; each as wall
time and as this process's CPU time (on a shared box the wall time measures the other jobs too).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report_time import DAY, START, TZ, contract_book, load, months_within, timed
from collector.exports import monthly_review_pdf, report_csv_tables, trend_months
from collector.exports.pdf import render
from collector.reporting import reports
from collector.service import wall_clock_ms
from collector.store.sqlite import SqliteStore
from linewarden.sla.periods import parse_month


def cpu_timed(fn: Any, *args: Any) -> tuple[Any, str]:
    """The result and its time as 'wall s (CPU s)'."""
    c0 = time.process_time()
    out, wall = timed(fn, *args)
    return out, f"{wall:.2f} s (CPU {time.process_time() - c0:.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--assets", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    start = parse_month(START, TZ).start_ms
    periods = months_within(start, start + args.days * DAY)
    if args.assets < 3 or not periods:
        parser.error("need at least 3 assets and --days covering one full month (31)")
    with tempfile.TemporaryDirectory(prefix="lw-bench-") as tmp:
        directory = Path(tmp)
        store = SqliteStore(directory / "collector.db")
        store.migrate()
        crit, load_s = timed(load, store, args.assets, start, start + args.days * DAY)
        book = contract_book(directory, [a for a, c in crit.items() if c == "critical"][:3])
        month = periods[-1].label
        now = wall_clock_ms()
        reports(store, book, month, "bench", None, now)  # warm the caches as a running collector has them
        _, one_s = cpu_timed(reports, store, book, month, "bench", None, now)
        trend, twelve_s = cpu_timed(
            lambda: [reports(store, book, m, "bench", None, now)[0] for m in trend_months(month)]
        )
        _, render_s = cpu_timed(render, trend[-1], trend, now, None)
        pdf, pdf_s = cpu_timed(lambda: monthly_review_pdf(store, book, month, "bench", None, now, checkpoint=None))
        tables, csv_s = cpu_timed(lambda: report_csv_tables(store, book, month, "bench", None, now, checkpoint=None))
        print(f"export bench: {args.assets:,} assets, {args.days} days from {START}; load {load_s:.1f} s (not timed)")
        print(f"{month}: bare report {one_s}; the trend's 12 reports {twelve_s}")
        print(f"review PDF {pdf_s} ({len(pdf) / 1024:.0f} KiB), of which the layout alone {render_s}")
        rows = sum(t.count("\r\n") - 1 for t in tables.values())
        print(f"CSV tables {csv_s} ({len(tables)} tables, {rows:,} rows)")


if __name__ == "__main__":
    main()
