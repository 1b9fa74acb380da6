"""The fault matrix, compressed (see test_faults.py): the faults of storage and time. A full disk at the agent
and at the collector (a small tmpfs: needs root), PostgreSQL restarted under the collector (needs a reachable
PostgreSQL), and the agent's clock stepped ahead and back. Each is skipped with the reason when it cannot run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_faults import check_fault

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.mark.parametrize("fault", ["agent-disk-full", "collector-disk-full", "pg-restart", "clock-step"])
async def test_fault_loses_nothing_and_tickets_once(fault: str, tmp_path: Path) -> None:
    await check_fault(fault, tmp_path)
