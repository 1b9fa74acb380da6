"""Tickets and a ticketing database for the sink, dispatch and audit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collector.store.sqlite import SqliteStore
from collector.ticketing.base import Link, Ticket
from linewarden.domain import Severity

T0 = 1_780_000_000_000  # a fixed instant (2026-05-28), ms


def ticket(incident: str = "inc-7f3a", **changes: Any) -> Ticket:
    base = Ticket(
        idempotency_key=incident,
        contract_id="acme-mes-2026",
        vendor="acme",
        asset="line3-plc",
        severity=Severity.S2,
        title="line3-plc DOWN: OPC UA session refused",
        description="The line 3 PLC stopped answering OPC UA reads at 06:02 UTC.",
        opened_at=T0,
        links=(Link("dashboard", "http://collector.plant-a.example/incidents/" + incident),),
    )
    return Ticket(**{**base.__dict__, **changes})


def open_db(path: Path) -> SqliteStore:
    """The collector's store on a real SQLite file, ticketing tables included (migrations run once)."""
    store = SqliteStore(path)
    store.migrate()
    return store
