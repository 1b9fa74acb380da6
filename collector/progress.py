"""A progress bar on standard error for long exports and imports, drawn only when it is a terminal (a pipe,
a log file or a service manager gets nothing), redrawn at most ten times a second."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO

WIDTH = 30
REDRAW_S = 0.1


class Progress:
    def __init__(self, total: int, label: str, stream: IO[str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.label, self.done = max(total, 0), label, 0
        self._stream = sys.stderr if stream is None else stream
        self._clock = clock
        self._drawn_at: float | None = None
        self.enabled = self._stream.isatty()

    def advance(self, amount: int, note: str = "") -> None:
        self.done += amount
        now = self._clock()
        if self.enabled and (self._drawn_at is None or now - self._drawn_at >= REDRAW_S):
            self._draw(note)
            self._drawn_at = now

    def _draw(self, note: str) -> None:
        share = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(share * WIDTH)
        bar = "#" * filled + "-" * (WIDTH - filled)
        self._stream.write(f"\r{self.label} [{bar}] {share:4.0%} {note[:40]:<40}")
        self._stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.done = max(self.done, self.total)
            self._draw("done")
            self._stream.write("\n")
            self._stream.flush()
