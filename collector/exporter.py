"""Export every table of the store as `<table>.jsonl` and `<table>.csv` in one directory.

Values are exported as stored: times are int ms since the Unix epoch (UTC); JSON columns (event `body`,
ticket `details`, window `assets`/`services`, incident `targets`) are JSON text.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from collector.store.base import Store


def export_all(store: Store, out_dir: Path) -> dict[str, int]:
    """Write every table; return rows written per table. Raises OSError when out_dir is not writable."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for table in store.table_names():
        rows = store.table_rows(table)
        with (out_dir / f"{table}.jsonl").open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        columns = store.table_columns(table)
        with (out_dir / f"{table}.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        counts[table] = len(rows)
    return counts
