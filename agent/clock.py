"""The agent's wall clock, with a test hook that steps it the way an NTP correction would.

Unset, `wall_clock()` is the plain wall clock. For fault tests only (bench/faults.py, tests/e2e/test_faults.py):
- `LINEWARDEN_CLOCK_OFFSET_MS=<int>` adds a fixed offset from start-up;
- `LINEWARDEN_CLOCK_OFFSET_FILE=<path>` names a file holding an integer offset in ms, read again when it
  changes (looked at no more than every 100 ms); a missing or unreadable file means no offset.
Both together add up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

OFFSET_ENV = "LINEWARDEN_CLOCK_OFFSET_MS"
OFFSET_FILE_ENV = "LINEWARDEN_CLOCK_OFFSET_FILE"
_RECHECK_S = 0.1


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def wall_clock() -> Callable[[], int]:
    """The clock `linewarden agent run` uses: `wall_ms`, stepped by the environment's offsets if set."""
    fixed = int(os.environ.get(OFFSET_ENV) or 0)
    name = os.environ.get(OFFSET_FILE_ENV)
    if name is None:
        return wall_ms if fixed == 0 else lambda: wall_ms() + fixed
    return _FileOffset(Path(name), fixed)


class _FileOffset:
    def __init__(self, path: Path, fixed: int) -> None:
        self._path = path
        self._fixed = fixed
        self._offset = 0
        self._seen: int | None = None
        self._next_check = 0.0

    def __call__(self) -> int:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + _RECHECK_S
            self._reload()
        return wall_ms() + self._fixed + self._offset

    def _reload(self) -> None:
        try:
            mtime = self._path.stat().st_mtime_ns
            if mtime != self._seen:
                self._offset = int(self._path.read_text().strip() or 0)
                self._seen = mtime
        except (OSError, ValueError):
            self._offset, self._seen = 0, None
