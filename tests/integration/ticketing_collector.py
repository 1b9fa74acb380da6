"""A collector in a process of its own, for the test that kills it mid-dispatch:
`python -m tests.integration.ticketing_collector DB BROKER_PORT JIRA_URL`."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from collector.service import CollectorService
from collector.store.sqlite import SqliteStore
from collector.ticketing.dispatch import RetryPolicy
from tests.integration.ticketing_helpers import book, collector_config, contract, sink_config

# Long enough that the stalled create is still waiting when the test kills us.
PATIENT = RetryPolicy(attempt_timeout_s=60, attempts=1, run_budget_s=60, wait_max_s=0.1)


async def main(db: Path, port: int, jira_url: str) -> None:
    store = SqliteStore(db)
    store.migrate()
    the_book = book(contract("acme-mes-2026", "acme", ["line3-plc"], sink_config("jira", jira_url)))
    config = collector_config("127.0.0.1", port, db.parent, "killed")
    service = CollectorService(config, store, book=the_book, dispatch_policy=PATIENT, ticket_poll_s=0.05)
    await service.start()
    while not service.mqtt.connected:
        await asyncio.sleep(0.05)
    (db.parent / "ready").touch()  # subscribed: the test may publish now
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
