"""File age probe: the newest file matching a glob must be younger than max_age (e.g. a nightly backup)."""

from __future__ import annotations

import asyncio
import glob
import hashlib
import os
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from agent.conditions import format_seconds
from agent.probes.base import Probe, ProbeResult
from linewarden.config.targets import FileAgeTarget
from linewarden.domain import State

if TYPE_CHECKING:
    from agent.probes.context import ProbeContext


def newest_file(pattern: str) -> tuple[str, float, int] | None:
    """(path, mtime, size) of the most recently modified regular file matching `pattern`, or None."""
    newest: tuple[str, float, int] | None = None
    for path in glob.iglob(pattern, recursive=True):
        try:
            stat = os.stat(path)
        except OSError:
            continue  # deleted or unreadable between listing and stat
        if os.path.isfile(path) and (newest is None or stat.st_mtime > newest[1]):
            newest = (path, stat.st_mtime, stat.st_size)
    return newest


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FileAgeProbe(Probe[FileAgeTarget]):
    kind = "file_age"

    def __init__(self, target: FileAgeTarget, timeout: timedelta, context: ProbeContext, interval: timedelta) -> None:
        super().__init__(target, timeout, context, interval)
        self._hashed: tuple[tuple[str, float, int], str] | None = None  # a big backup is hashed once per version

    def poll_budget(self) -> float:
        return self.timeout_s * (4 if self.target.hash else 2) + 1.0

    async def poll(self, now: float) -> ProbeResult:
        started = time.perf_counter()
        try:
            found = await asyncio.wait_for(asyncio.to_thread(newest_file, self.target.pattern), self.timeout_s)
        except TimeoutError:
            reason = f"listing {self.target.pattern} took longer than {self.timeout_s:g} s"
            return ProbeResult(State.UNKNOWN, reason, cause="file.list_timeout")
        if found is None:
            return ProbeResult(State.DOWN, f"no file matches {self.target.pattern}", cause="file.missing")
        path, mtime, _ = found
        age = max(0.0, now - mtime)
        name = os.path.basename(path)
        values = {"file": name, "age_s": round(age, 1)}
        versions: dict[str, str] = {}
        if self.target.hash:
            digest = await self._digest(found)
            if digest:
                versions[name] = digest
        latency = (time.perf_counter() - started) * 1000
        limit = self.target.max_age.total_seconds()
        if age > limit:
            reason = f"newest file {name} is {format_seconds(age)} old (limit {format_seconds(limit)})"
            return ProbeResult(State.DOWN, reason, latency, values, versions, cause="file.too_old")
        return ProbeResult(State.UP, "", latency, values, versions)

    async def _digest(self, found: tuple[str, float, int]) -> str:
        if self._hashed is not None and self._hashed[0] == found:
            return self._hashed[1]
        try:
            digest = await asyncio.wait_for(asyncio.to_thread(sha256_of, found[0]), self.timeout_s * 2)
        except (TimeoutError, OSError):
            return ""
        self._hashed = (found, digest)
        return digest
