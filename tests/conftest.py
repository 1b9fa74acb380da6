"""Session-wide fixtures: a real Mosquitto broker on a free loopback port, PostgreSQL when present.

The suite runs on several pytest-xdist workers (pyproject: `-n 3 --dist loadscope`); most tests wait on real
processes and sockets, not on the CPU. Each worker has its own session fixtures (its own broker); a module's
tests run on one worker, in order, so a module-scoped fixture (a running collector, a browser) starts once."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import psutil
import pytest

from simulators.broker import Mosquitto


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    """One broker for the session. Tests that restart it must leave it running."""
    broker = Mosquitto()
    broker.start()
    yield broker
    pid = broker.proc.pid if broker.proc else None
    broker.cleanup()
    if pid is not None:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, (
            "mosquitto left running after the session"
        )


@pytest.fixture
def own_mosquitto() -> Iterator[Mosquitto]:
    """A broker of the test's own, for tests that stop, restart or start it late."""
    broker = Mosquitto()
    yield broker
    broker.cleanup()


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("LINEWARDEN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    if not _postgres_reachable():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432 (set LINEWARDEN_TEST_POSTGRES)")
    return url
