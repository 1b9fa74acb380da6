"""Files only their owner may read: databases, outboxes, RCA documents, keys (0600, in 0700 folders); and the
small files a config names (secrets, certificates), read only when regular and within a size.

On Windows the mode bits mean little; the installer gives the data folder to SYSTEM and Administrators.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FILE_MODE, DIR_MODE = 0o600, 0o700


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) as 0700; a folder that exists keeps its mode."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return path


def private_file(path: Path) -> Path:
    """Make sure `path` exists as a 0600 file in a private folder (created empty if missing, so the SQLite
    journal files it gets later inherit its mode); an existing file readable by others is narrowed to 0600."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    if os.name == "posix" and path.stat().st_mode & 0o077:
        path.chmod(FILE_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to a 0600 file in a private folder."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def read_small(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes. Raises OSError, or ValueError for anything else: a
    device (/dev/zero never ends), a FIFO (opening it blocks), a directory, or a larger file."""
    if not stat.S_ISREG(path.stat().st_mode):
        raise ValueError("not a regular file")
    with path.open("rb") as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise ValueError(f"larger than {limit} bytes")
    return raw
