"""The agent clock's test hook: a fixed offset from the environment, a stepped one from a file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from agent.clock import OFFSET_ENV, OFFSET_FILE_ENV, wall_clock, wall_ms
from tests.waiting import wait_until

HOUR_MS = 3_600_000


def test_unset_is_the_plain_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OFFSET_ENV, raising=False)
    monkeypatch.delenv(OFFSET_FILE_ENV, raising=False)
    assert wall_clock() is wall_ms


def test_fixed_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OFFSET_ENV, str(HOUR_MS))
    monkeypatch.delenv(OFFSET_FILE_ENV, raising=False)
    before = wall_ms()
    stepped = wall_clock()()
    assert before + HOUR_MS <= stepped <= wall_ms() + HOUR_MS


def test_file_offset_steps_forward_and_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    offset = tmp_path / "offset"
    monkeypatch.delenv(OFFSET_ENV, raising=False)
    monkeypatch.setenv(OFFSET_FILE_ENV, str(offset))
    clock = wall_clock()
    assert abs(clock() - wall_ms()) < HOUR_MS // 2, "no file: no offset"

    offset.write_text(str(HOUR_MS))
    wait_until(lambda: clock() - wall_ms() > HOUR_MS // 2, what="stepped forward")
    offset.write_text(str(-HOUR_MS))
    os.utime(offset, ns=(time.time_ns(), time.time_ns() + 1))  # a new mtime even on a coarse filesystem clock
    wait_until(lambda: clock() - wall_ms() < -HOUR_MS // 2, what="stepped back")
    offset.write_text("not a number")
    os.utime(offset, ns=(time.time_ns(), time.time_ns() + 2))
    wait_until(lambda: abs(clock() - wall_ms()) < HOUR_MS // 2, what="unreadable: no offset")
