"""Log set-up shared by the agent and the collector: one line per real event, as text or JSON.

The protocol libraries report, at ERROR, things the agent already reports itself as probe results
(a Modbus device that does not answer, an OPC UA session torn down on shutdown) and dump frames in
hex. `LibraryNoise` demotes those records to DEBUG, so they show only when asked for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The libraries log every dropped connection; the apps report outages themselves, on state edges.
QUIET_LIBRARIES = ("asyncua", "pymodbus", "httpx", "httpcore")
_HEX_DUMP = re.compile(r"0x[0-9a-f]{1,2} 0x[0-9a-f]{1,2}", re.I)
_MODBUS_EXPECTED = ("No response received",)
_OPCUA_TEARDOWN = ("during disconnect", "continuing teardown", "Error while renewing session")
_TEARDOWN_ERRORS = (asyncio.CancelledError, ConnectionError, TimeoutError, EOFError)


def _is_noise(record: logging.LogRecord) -> bool:
    if record.name.startswith("pymodbus"):
        text = record.getMessage()
        return any(m in text for m in _MODBUS_EXPECTED) or bool(_HEX_DUMP.search(text))
    if record.name.startswith("asyncua"):
        exc = record.exc_info[1] if record.exc_info else None
        return isinstance(exc, _TEARDOWN_ERRORS) or any(m in record.getMessage() for m in _OPCUA_TEARDOWN)
    return False


class LibraryNoise(logging.Filter):
    """Demote the libraries' expected-failure records to DEBUG; drop them unless DEBUG is on."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG or not _is_noise(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.exc_info, record.exc_text = None, None  # a teardown is not worth a traceback
        return self.level <= logging.DEBUG


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (ISO 8601, UTC), level, logger, message, and exc when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def make_formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def level_number(level: str) -> int:
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}")
    return number


def setup_logging(
    level: str = "info",
    fmt: LogFormat = "text",
    stream: TextIO | None = None,
    extra_handlers: Sequence[logging.Handler] = (),
    console: bool = True,
) -> list[logging.Handler]:
    """Replace the root logger's handlers: stderr (or `stream`; none if not `console`) plus `extra_handlers`,
    all filtered for noise."""
    number = level_number(level)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)] if console else []
    handlers += extra_handlers
    for handler in handlers:
        if handler.formatter is None:
            handler.setFormatter(make_formatter(fmt))
        for old_filter in [f for f in handler.filters if isinstance(f, LibraryNoise)]:
            handler.removeFilter(old_filter)
        handler.addFilter(LibraryNoise(number))
        root.addHandler(handler)
    root.setLevel(number)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if number <= logging.DEBUG else logging.ERROR)
    return handlers
