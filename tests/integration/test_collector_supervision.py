"""The collector's loops under supervision, with a real broker and SQLite: a crashed timer loop is restarted
and counted; one that keeps crashing ends `run()` with SupervisorGaveUp (and `collector run` with exit 1)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import collector.service
from collector.service import CollectorService
from collector.store.sqlite import SqliteStore
from collector.ticketing.timers import Timers
from linewarden.cli import main
from linewarden.supervise import RestartPolicy, SupervisorGaveUp
from simulators.broker import Mosquitto
from tests.integration.test_ingest import _config
from tests.waiting import async_wait_until

pytestmark = pytest.mark.broker

FAST = RestartPolicy(first_wait_s=0.01, max_wait_s=0.05, max_crashes=3, window_s=600)


def service(mosquitto: Mosquitto, tmp_path: Path) -> CollectorService:
    data = tmp_path / "data"
    svc = CollectorService(_config(mosquitto, data), SqliteStore(data / "collector.db"), ticket_poll_s=0.01)
    svc.store.migrate()
    return svc


async def test_a_crashed_timer_loop_is_restarted_and_counted(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector.service, "RESTART_POLICY", FAST, raising=False)
    real_run, real_run_once = Timers.run, Timers.run_once
    started = rounds = 0

    async def run_crashing_once(self: Timers, stop: asyncio.Event, poll_s: float = 1.0) -> None:
        nonlocal started
        started += 1
        if started == 1:
            raise RuntimeError("injected timer loop fault")
        await real_run(self, stop, poll_s)

    def counted_round(self: Timers) -> None:
        nonlocal rounds
        rounds += 1
        real_run_once(self)

    monkeypatch.setattr(Timers, "run", run_crashing_once)
    monkeypatch.setattr(Timers, "run_once", counted_round)
    svc = service(mosquitto, tmp_path)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        await async_wait_until(lambda: rounds >= 3, what="timer rounds after the restart")
        assert svc.supervisor.crashes == {"ticket-timers": 1}
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def test_a_loop_that_keeps_crashing_stops_the_collector(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector.service, "RESTART_POLICY", FAST, raising=False)

    async def always_crash(self: Timers, stop: asyncio.Event, poll_s: float = 1.0) -> None:
        raise RuntimeError("injected timer loop fault")

    monkeypatch.setattr(Timers, "run", always_crash)
    svc = service(mosquitto, tmp_path)
    with pytest.raises(SupervisorGaveUp, match="ticket-timers crashed 4 times"):
        await asyncio.wait_for(svc.run(asyncio.Event()), 20)


def test_collector_run_exits_1_when_a_loop_keeps_crashing(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector.service, "RESTART_POLICY", FAST, raising=False)

    async def always_crash(self: Timers, stop: asyncio.Event, poll_s: float = 1.0) -> None:
        raise RuntimeError("injected timer loop fault")

    monkeypatch.setattr(Timers, "run", always_crash)
    config = tmp_path / "collector.toml"
    config.write_text(
        f'[collector]\ndata_dir = "{tmp_path / "data"}"\n[broker]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
        '[api]\nport = 0\n'
    )
    assert main(["collector", "run", "--config", str(config)]) == 1
