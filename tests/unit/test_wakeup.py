"""How long the collector's loops sleep, and their wake-up from another thread (collector/wakeup.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from collector.wakeup import RETRY_S, Wakeup, sleep_s


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        (None, 10.0),  # nothing due: the safety poll
        (1_000, RETRY_S),  # due before the round began and still there: another collector holds it
        (1_400, 0.0),  # came due during the round: at once
        (3_000, 1.5),  # until it is due
        (60_000, 10.0),  # but no longer than the safety poll
    ],
)
def test_sleep_s(due, expected):
    assert sleep_s(round_ms=1_000, now_ms=1_500, due_ms=due, poll_s=10.0) == expected


async def test_a_wakeup_set_from_another_thread_ends_the_wait():
    wakeup = Wakeup()
    waiting = asyncio.create_task(wakeup.wait(3600))
    await asyncio.sleep(0)  # the task waits (and knows its loop)
    threading.Thread(target=wakeup.set).start()
    await asyncio.wait_for(waiting, 10)


async def test_a_wakeup_set_while_the_loop_was_busy_is_not_lost_and_a_stop_ends_the_wait():
    wakeup, stop = Wakeup(), asyncio.Event()
    wakeup.set()
    await asyncio.wait_for(wakeup.wait(3600), 10)  # returns at once, and clears it
    waiting = asyncio.create_task(wakeup.wait(3600, stop))
    await asyncio.sleep(0)
    assert not waiting.done()
    stop.set()
    await asyncio.wait_for(waiting, 10)
