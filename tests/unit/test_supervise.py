"""The task supervisor: crashes are logged with their traceback, counted and restarted with bounded backoff;
repeated crashes within the window give up."""

from __future__ import annotations

import asyncio
import logging

import pytest

from linewarden.supervise import RestartPolicy, Supervisor, SupervisorGaveUp

FAST = RestartPolicy(first_wait_s=0.001, max_wait_s=0.004, max_crashes=3, window_s=60)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_and_is_bounded() -> None:
    policy = RestartPolicy(first_wait_s=0.5, max_wait_s=30)
    assert [policy.wait_s(n) for n in range(1, 10)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


async def test_a_crash_is_logged_counted_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise RuntimeError(f"boom {runs}")

    sup = Supervisor(FAST)
    await asyncio.wait_for(sup.spawn("flaky", flaky), 5)
    assert runs == 3
    assert sup.crashes == {"flaky": 2} and sup.total_crashes == 2
    crashes = [r for r in caplog.records if r.levelno == logging.ERROR and "flaky crashed" in r.getMessage()]
    assert len(crashes) == 2 and all(r.exc_info is not None for r in crashes), "logged with the traceback"


async def test_repeated_crashes_within_the_window_give_up() -> None:
    async def broken() -> None:
        raise ValueError("always")

    sup = Supervisor(FAST)
    task = sup.spawn("broken", broken)
    with pytest.raises(SupervisorGaveUp, match="broken crashed 4 times"):
        await asyncio.wait_for(sup.failed(), 5)
    await asyncio.wait_for(task, 5)
    assert sup.crashes["broken"] == 4


async def test_crashes_spread_beyond_the_window_do_not_add_up() -> None:
    clock = Clock()
    runs = 0

    async def now_and_then() -> None:
        nonlocal runs
        runs += 1
        clock.now += 61  # each crash a window after the previous one
        if runs <= 10:
            raise ValueError("once in a while")

    sup = Supervisor(FAST, clock)
    await asyncio.wait_for(sup.spawn("rare", now_and_then), 5)
    assert sup.crashes["rare"] == 10 and runs == 11


async def test_cancelling_ends_supervision_without_a_crash() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    sup = Supervisor(FAST)
    task = sup.spawn("forever", forever)
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sup.total_crashes == 0
