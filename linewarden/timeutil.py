"""Pure conversions between wire times (int ms since epoch, UTC), datetimes and durations."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_SECONDS = timedelta.max.total_seconds()
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d|w)")


def parse_duration(text: str) -> timedelta:
    """Parse '500ms', '5s', '1h30m', '3d', '2w' into a timedelta. Raises ValueError on anything else."""
    s = text.strip().lower().replace(" ", "")
    if not s:
        raise ValueError("empty duration")
    pos = 0
    total = 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise ValueError(f"not a duration: {text!r} (use e.g. '500ms', '5s', '10m', '1h', '3d')")
    if not total <= _MAX_SECONDS:  # also catches an infinite float of 400 digits
        raise ValueError(f"duration too long: {text!r}")
    return timedelta(seconds=total)


def format_duration(d: timedelta) -> str:
    secs = d.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size and secs % size == 0:
            return f"{int(secs // size)}{unit}"
    return f"{int(secs * 1000)}ms"


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def dt_to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError("naive datetime: linewarden only handles aware datetimes")
    return round(dt.timestamp() * 1000)
