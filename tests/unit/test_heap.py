"""glibc's heap controls: freed memory goes back to the system; elsewhere they do nothing."""

from __future__ import annotations

import platform

import pytest

from agent import heap

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_trim_hands_freed_heap_memory_back() -> None:
    heap.limit_arenas()
    heap.trim()
    blocks = [bytes(2000) + i.to_bytes(4, "big") for i in range(20_000)]  # malloc'd: over pymalloc's 512 bytes
    del blocks[1:]
    assert heap.trim() is True


def test_without_glibc_both_do_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_looked_up", True)
    monkeypatch.setattr(heap, "_libc", None)
    heap.limit_arenas()
    assert heap.trim() is False
