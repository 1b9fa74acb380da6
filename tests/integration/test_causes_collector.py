"""Cause codes at the collector: stored from real wire payloads (old ones without a cause still go in), and
the scorecard's recurrence figure counts repeats of one fault whatever the measurements in their reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from msgspec.structs import replace

from collector.ingest import Ingest
from collector.reporting import reports
from collector.store.sqlite import SqliteStore
from linewarden.config.collector import LivenessConfig
from linewarden.domain import Criticality, ProbeKind, Severity, State
from linewarden.wire import (
    IncidentOpenedBody,
    IncidentOpenedEvent,
    IncidentResolvedBody,
    IncidentResolvedEvent,
    StateChangeBody,
    StateChangeEvent,
    TargetInfo,
    birth_topic,
    build,
    encode,
    events_topic,
)
from tests.integration.collector_helpers import T0, batch, birth
from tests.integration.ticketing_helpers import book, contract

SITE, AGENT = "plant-a", "a1"
H = 3600 * 1000
MONTH = "2026-05"  # T0 is 2026-05-28


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(tmp_path / "collector.db")
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def ingest(store: SqliteStore) -> Ingest:
    return Ingest(store, LivenessConfig(missed_heartbeats=3, clock_skew_threshold=timedelta(seconds=30)), T0)


def _outage(seq: int, incident: str, opened: int, restored: int, reason: str, cause: str | None) -> list[object]:
    change = build(
        StateChangeBody,
        {
            "target": "mes",
            "asset": "mes-app",
            "from": "UP",
            "to": "DEGRADED",
            "reason": reason,
            "cause": cause,
            "at": opened,
        },
    )
    opened_body = IncidentOpenedBody(
        incident=incident,
        target="mes",
        asset="mes-app",
        criticality=Criticality.CRITICAL,
        severity=Severity.S2,
        state=State.DEGRADED,
        reason=reason,
        cause=cause,
        in_production=True,
        opened_at=opened,
    )
    return [
        StateChangeEvent(seq=seq, ts=opened, body=change),
        IncidentOpenedEvent(seq=seq + 1, ts=opened, body=opened_body),
        IncidentResolvedEvent(seq=seq + 2, ts=restored, body=IncidentResolvedBody(incident=incident, at=restored)),
    ]  # fmt: skip


def test_cause_is_stored_and_recurrence_uses_it(ingest: Ingest, store: SqliteStore) -> None:
    events = [
        *_outage(1, "inc-1", T0, T0 + H, "slow answer: 912 ms (limit 800 ms)", "http.slow"),
        *_outage(4, "inc-2", T0 + 2 * H, T0 + 3 * H, "slow answer: 430 ms (limit 400 ms)", "http.slow"),
        *_outage(7, "inc-3", T0 + 4 * H, T0 + 5 * H, "no answer within 2 s", None),  # an agent from before causes
    ]
    mes = TargetInfo(id="mes", kind=ProbeKind.HTTP, asset="mes-app", criticality=Criticality.CRITICAL)
    ingest.handle(birth_topic(SITE, AGENT), encode(replace(birth(SITE, AGENT), targets=[mes])), T0)
    ingest.handle(events_topic(SITE, AGENT), encode(batch(SITE, AGENT, events)), T0 + 6 * H)

    assert [c.cause for c in store.state_changes(T0, T0 + 6 * H)] == ["http.slow", "http.slow", None]
    assert [i.cause for i in store.incidents(T0, T0 + 6 * H)] == ["http.slow", "http.slow", None]
    [report] = reports(store, book(contract("c1", "acme", ["mes-app"], None)), MONTH, as_of_ms=T0 + 7 * H)
    assert [(i.id, i.recurring) for i in report.incidents] == [("inc-1", False), ("inc-2", True), ("inc-3", False)]
    assert (report.scorecard.incidents, report.scorecard.recurring) == (3, 1)
