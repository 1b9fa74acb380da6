"""The C heap of a long-running agent: fewer malloc arenas, and freed memory handed back to the system.

glibc keeps memory that C code (SQLite, OpenSSL, the sockets' buffers, Python objects over 512 bytes) has freed
for reuse inside the process; reconnect churn scatters it, so the resident size creeps although nothing leaks
(docs/footprint.md, "Long runs"). `limit_arenas()` caps the malloc arenas (one per thread that allocates, by
default up to 8 per core), `trim()` gives free pages back (`malloc_trim`). Elsewhere than glibc both do nothing.
"""

from __future__ import annotations

import ctypes
import logging
import platform
from typing import Any

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter
ARENAS = 2  # the event loop's thread and paho's
TRIM_EVERY_S = 10.0  # a trim takes ~0.5-2 ms here; more often keeps the saw-tooth between trims small

_libc: Any = None
_looked_up = False


def _glibc() -> Any:
    global _libc, _looked_up
    if not _looked_up:
        _looked_up = True
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                _libc = ctypes.CDLL(None)  # the process's own symbols, glibc's among them (not ctypes.util: +0.5 MB)
                _libc.malloc_trim.argtypes = [ctypes.c_size_t]
                _libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            except (OSError, AttributeError) as exc:
                log.debug("glibc's malloc controls are not available: %s", exc)
                _libc = None
    return _libc


def limit_arenas(arenas: int = ARENAS) -> None:
    """Cap glibc's malloc arenas (as MALLOC_ARENA_MAX would); call before threads start."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, arenas)


def trim() -> bool:
    """Return the heap's free pages to the system; True if glibc released any."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
