"""The portable part of the Windows service: run and stop from another thread, logs to a file and the event log."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from linewarden.service_host import ServiceHost
from tests.waiting import wait_until

pytestmark = pytest.mark.broker


class Recorder(logging.Handler):
    """Stands in for the Windows Event Log handler."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _start(host: ServiceHost) -> tuple[threading.Thread, list[int]]:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(host.run()), name="service-main")
    thread.start()
    return thread, codes


def test_collector_service_runs_until_stopped_from_another_thread(mosquitto, tmp_path: Path, restore_root) -> None:
    config = tmp_path / "collector.toml"
    config.write_text(
        f'[collector]\nid = "svc"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n[api]\nport = 0\n'
    )
    event_log = Recorder()
    host = ServiceHost("collector", config, tmp_path / "logs", [event_log])
    thread, codes = _start(host)
    try:
        wait_until(host.started.is_set, what="service started")
        wait_until(lambda: "API listening" in host.log_file.read_text(), what="start-up logged to the file")
    finally:
        host.stop()
        thread.join(30)
    assert codes == [0]
    text = host.log_file.read_text()
    assert "collector svc starting as a service" in text and "service stopped" in text
    assert [r for r in event_log.records if r.levelno < logging.WARNING] == []  # the event log gets problems only


def test_a_bad_config_exits_2_and_says_why_in_the_file_and_the_event_log(tmp_path: Path, restore_root) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nid = "a"\nsite = "s"\nmystery = 1\n')
    event_log = Recorder()
    host = ServiceHost("agent", config, tmp_path / "logs", [event_log])
    thread, codes = _start(host)
    thread.join(30)
    assert codes == [2]
    assert "mystery" in host.log_file.read_text()
    assert any("mystery" in r.getMessage() and r.levelno == logging.ERROR for r in event_log.records)


def test_a_stop_before_the_start_ends_at_once(tmp_path: Path, restore_root) -> None:
    host = ServiceHost("agent", tmp_path / "absent.toml", tmp_path / "logs")
    host.stop()
    thread, codes = _start(host)
    thread.join(30)
    assert codes == [0]
