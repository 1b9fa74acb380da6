"""The fault matrix, compressed: each fault bench/faults.py injects, once, on the
whole system (Mosquitto with the packaged config, two agents and the collector as processes of their own,
simulators, a webhook vendor). Nothing may be lost, no outage may go without its incident, no incident may get
two tickets, and the system must settle: every outbox acked, every incident resolved and ticketed.

The disk-full faults need root (a small tmpfs is mounted) and `pg-restart` a reachable PostgreSQL; each is
skipped with the reason otherwise. Figures of the long runs: bench/README.md.

Run as a script, this file is the collector of these tests: `linewarden collector run` with short ticket leases,
so that a create the killed collector had claimed is claimed again within seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import pytest

from bench.faults import BY_NAME, Figures, Pace, run_fault
from collector.ticketing.dispatch import RetryPolicy

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TEST_PACE = Pace(collector_down_s=6.0, disk_full_s=5.0)
SETTLE_S = 60.0
# Lease = run budget + attempt timeout + longest wait + 1 s = 11.1 s. The attempt must outlast the moment the
# test needs to kill the collector once the vendor has the request.
SHORT_LEASE = RetryPolicy(attempt_timeout_s=5, attempts=1, run_budget_s=5, wait_max_s=0.1, backoff_min_ms=1000)


def short_lease_collector(config: Path) -> list[str]:
    return [sys.executable, "-m", "tests.e2e.test_faults", str(config)]


async def run(name: str, tmp_path: Path) -> Figures:
    fig = await run_fault(BY_NAME[name], tmp_path / name, None, TEST_PACE, short_lease_collector, SETTLE_S)
    if fig.skipped is not None:
        pytest.skip(fig.skipped)
    return fig


def assert_nothing_lost_or_doubled(fig: Figures) -> None:
    detail = "\n".join(fig.notes)
    assert fig.settled, f"not settled within {SETTLE_S} s:\n{detail}"
    assert fig.produced > 0 and fig.outages >= 2, "the fault ran on a system that did something"
    # The agents keep running while the figures are read: an event made after the settle check waits in its
    # outbox (held), which is not lost.
    assert fig.lost == 0 and fig.stored + fig.declared_lost + fig.held == fig.produced, detail
    assert fig.duplicated == 0, detail
    assert fig.missed == 0 and fig.extra_incidents == 0, (fig.outages, fig.incidents, detail)
    assert fig.tickets_received == fig.tickets_expected == fig.incidents, detail
    assert fig.duplicate_tickets == 0, detail


# Processes killed here; the storage and clock faults in test_faults_storage.py (a module of their own, so the
# suite's workers run both halves side by side).
PROCESS_FAULTS = ["agent-kill", "broker-kill", "collector-kill"]


async def check_fault(fault: str, tmp_path: Path) -> None:
    fig = await run(fault, tmp_path)
    assert_nothing_lost_or_doubled(fig)
    assert fig.declared_lost == 0, "no fault here may make an agent drop events"
    assert fig.crashes == 0, "\n".join(fig.notes)
    assert (fig.dated_ahead > 0) == (fault == "clock-step"), "the step took effect, and only there"


@pytest.mark.parametrize("fault", PROCESS_FAULTS)
async def test_fault_loses_nothing_and_tickets_once(fault: str, tmp_path: Path) -> None:
    await check_fault(fault, tmp_path)


async def test_collector_killed_during_a_ticket_create_tickets_once(tmp_path: Path) -> None:
    fig = await run("collector-kill-ticket", tmp_path)
    assert_nothing_lost_or_doubled(fig)
    assert fig.duplicate_requests >= 1, "the restarted collector asked again, with the same Idempotency-Key"


async def _serve(config_path: Path) -> None:
    from collector.service import CollectorService
    from collector.store import open_store
    from linewarden.book import load_book
    from linewarden.config.collector import CollectorConfig
    from linewarden.config.load import load

    config = load(CollectorConfig, config_path)
    store = open_store(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        service = CollectorService(config, store, book=load_book(config, config_path), dispatch_policy=SHORT_LEASE)
        await service.run(stop)
    finally:
        store.close()


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(Path(sys.argv[1])))
