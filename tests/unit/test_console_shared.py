"""The overview's shared live parts: made once for every console asking at once, again when stale."""

from __future__ import annotations

import threading

from collector.console.shared import Shared


def test_requests_arriving_while_it_is_made_wait_for_it_instead_of_making_it_again() -> None:
    now = [0]
    made: list[str] = []
    inside, release = threading.Event(), threading.Event()

    def make() -> str:
        made.append("x")
        inside.set()
        release.wait(10)
        return "parts"

    shared: Shared[str] = Shared(lambda: now[0], 1000)
    got: list[str] = []
    first = threading.Thread(target=lambda: got.append(shared.get("k", make)))
    first.start()
    assert inside.wait(10)
    others = [threading.Thread(target=lambda: got.append(shared.get("k", make))) for _ in range(5)]
    for t in others:
        t.start()
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert got == ["parts"] * 6 and made == ["x"]


def test_a_value_older_than_its_age_or_of_another_key_is_made_again() -> None:
    now = [0]
    calls = iter(range(100))
    shared: Shared[int] = Shared(lambda: now[0], 1000)
    assert shared.get("v1", lambda: next(calls)) == 0
    now[0] = 1000
    assert shared.get("v1", lambda: next(calls)) == 0  # at most 1 s old: shared
    assert shared.get("v2", lambda: next(calls)) == 1  # the store moved on: another key
    now[0] = 1001
    assert shared.get("v1", lambda: next(calls)) == 2  # stale
