"""Log set-up: JSON lines, one level and format switch for both apps, the libraries' expected failures quiet."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
from pymodbus.logging import Log

from linewarden.logs import setup_logging

ROOT = Path(__file__).resolve().parents[2]
modbus_error = cast(Callable[..., None], Log.error)  # pymodbus's own logging entry point (untyped)


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {n: logging.getLogger(n).level for n in ("asyncua", "pymodbus")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


def _lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_lines_carry_time_level_logger_message_and_traceback(restore_root: None) -> None:
    out = io.StringIO()
    setup_logging("info", "json", stream=out)
    logging.getLogger("collector.ingest").warning("dead letter on %s", "lw/v1/x")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("collector").exception("failed")
    first, second = (json.loads(line) for line in _lines(out))
    assert first["level"] == "WARNING" and first["logger"] == "collector.ingest"
    assert first["message"] == "dead letter on lw/v1/x"
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert "ValueError: boom" in second["exc"]


def test_modbus_timeouts_and_hex_dumps_are_quiet_unless_debugging(restore_root: None) -> None:
    out = io.StringIO()
    setup_logging("info", "text", stream=out)
    modbus_error("No response received after {} retries, continue with next request", 3)
    modbus_error("Processing: {}", b"\x00\x01\x00\x00\x00\x06\x01\x03", ":hex")
    modbus_error("device rejected request: illegal function")  # a real one stays
    assert _lines(out) == [line for line in _lines(out) if "illegal function" in line]
    assert len(_lines(out)) == 1

    out = io.StringIO()
    setup_logging("debug", "text", stream=out)
    modbus_error("No response received after {} retries, continue with next request", 3)
    assert "DEBUG pymodbus" in out.getvalue()


def test_opcua_teardown_tracebacks_are_quiet(restore_root: None) -> None:
    out = io.StringIO()
    setup_logging("info", "text", stream=out)
    opcua = logging.getLogger("asyncua.client.client")
    try:
        raise asyncio.CancelledError
    except asyncio.CancelledError:
        opcua.exception("close_session raised during disconnect; continuing teardown")
    try:
        raise ConnectionResetError("peer went away")
    except ConnectionResetError:
        opcua.exception("Error while renewing session")
    opcua.error("BadUserAccessDenied on read")
    assert len(_lines(out)) == 1
    assert "BadUserAccessDenied" in out.getvalue() and "Traceback" not in out.getvalue()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


AGENT = """
[agent]
id = "log-agent"
site = "plant-a"
data_dir = "{data}"
log_level = "warning"

[broker]
host = "127.0.0.1"
port = {port}

[[assets]]
id = "plc-1"
criticality = "high"

[[targets]]
id = "plc-port"
type = "tcp"
asset = "plc-1"
host = "127.0.0.1"
port = {port}
"""
COLLECTOR = """
[collector]
data_dir = "{data}"
log_format = "json"

[broker]
host = "127.0.0.1"
port = {port}

[api]
port = 0
"""


@pytest.mark.parametrize(
    ("app", "template", "flags"),
    [
        ("agent", AGENT, ["--log-level", "info", "--log-format", "json"]),
        ("collector", COLLECTOR, ["--log-level", "INFO"]),
    ],
)
def test_both_apps_take_level_and_format_from_config_or_flags(
    tmp_path: Path, app: str, template: str, flags: list[str]
) -> None:
    """The agent's config says warning/text and its flags override; the collector's config says json."""
    config = tmp_path / f"{app}.toml"
    config.write_text(template.format(data=tmp_path / "data", port=_closed_port()))
    proc = subprocess.Popen(
        [sys.executable, "-m", "linewarden.cli", app, *flags[:2], "run", "--config", str(config), *flags[2:]],
        stderr=subprocess.PIPE, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        # the start-up line at INFO (a collector's first start may say first that it made the console's key file)
        lines = [proc.stderr.readline() for _ in range(1 if app == "agent" else 2)]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    entries = [json.loads(line) for line in lines]
    assert all(e["level"] == "INFO" for e in entries)
    assert "starting" in entries[-1]["message"]
