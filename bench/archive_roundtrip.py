"""Archive export and import: time and peak Python memory against reading every table whole.

    .venv/bin/python bench/archive_roundtrip.py [--assets 1000] [--days 365]

Builds the store of bench/report_time.py (same data), then measures, each first untraced for its time and
then again under tracemalloc for its peak:
- baseline: `store.table_rows(t)` for every table, the whole of each in memory at once (what the export
  did before it streamed);
- `export_archive`: the streamed archive (zip of JSON Lines, manifest), its size;
- `import_archive`: the archive into a fresh SQLite store.
Then checks that the last full month's report is the same from both stores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.report_time import DAY, START, TZ, contract_book, load, months_within  # noqa: E402
from collector.archive_import import import_archive  # noqa: E402
from collector.exporter import export_archive  # noqa: E402
from collector.reporting import reports, with_checkpoint  # noqa: E402
from collector.service import wall_clock_ms  # noqa: E402
from collector.store import open_store  # noqa: E402
from collector.store.sqlite import SqliteStore  # noqa: E402
from linewarden.config.collector import CollectorConfig  # noqa: E402
from linewarden.sla.periods import parse_month  # noqa: E402


def measured(fn: Any) -> tuple[Any, float, float]:
    """(result, seconds untraced, peak MiB traced); `fn` runs twice."""
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    out = fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, seconds, peak


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
        crit = load(store, args.assets, start, start + args.days * DAY)
        book = contract_book(directory, [a for a, c in crit.items() if c == "critical"][:3])
        config = CollectorConfig.model_validate({"collector": {"data_dir": str(directory / "data")}})
        rows = sum(len(store.table_rows(t)) for t in store.table_names())
        archive = directory / "archive.zip"
        _, base_s, base_mib = measured(lambda: [store.table_rows(t) for t in store.table_names()])
        _, export_s, export_mib = measured(
            lambda: export_archive(store, config, directory / "collector.toml", archive, wall_clock_ms()))

        counter = iter(range(2))

        def fresh_import() -> Any:
            target = CollectorConfig.model_validate({"collector": {"data_dir": str(directory / f"new{next(counter)}")}})
            import_archive(target, archive, wall_clock_ms())
            return target

        target, import_s, import_mib = measured(fresh_import)
        month = periods[-1].label
        now = wall_clock_ms()
        imported = open_store(target)
        same = [with_checkpoint(r, None) for r in reports(store, book, month, now_ms=now)] == [
            with_checkpoint(r, None) for r in reports(imported, book, month, now_ms=now)]
        imported.close()
        store.close()
        print(f"archive bench: {args.assets:,} assets, {args.days} days from {START}: {rows:,} rows")
        print(f"baseline, every table read whole: {base_s:.2f} s, peak {base_mib:.1f} MiB")
        print(f"export_archive (streamed): {export_s:.2f} s, peak {export_mib:.1f} MiB, "
              f"archive {archive.stat().st_size / 2**20:.1f} MiB")
        print(f"import_archive into a fresh store: {import_s:.2f} s, peak {import_mib:.1f} MiB")
        print(f"{month} report the same from both stores: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
