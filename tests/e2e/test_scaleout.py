"""Three collectors on one PostgreSQL sharing the ingest (MQTT shared subscription on a real Mosquitto), two
real agents: one collector is killed -9 mid-stream, another while its ticket create is at the vendor. Nothing
is lost, no incident gets two tickets, the acks keep moving, the survivor takes the create over after its lease
and the audit chain verifies (docs/scale-out.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.faults import DOWN_S, SETTLE_S, System, postgres_unavailable, wait_for
from collector.audit import chain_break
from tests.e2e.test_faults import assert_nothing_lost_or_doubled, short_lease_collector

# Five processes start on a busy 2-core box; the suite's 120 s per test is too tight for that on a bad day.
pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

WAIT_S = 60.0  # generous: the machine may be busy; every wait is for a condition


def _acked(system: System) -> list[int]:
    states = [side.outbox() for side in system.sides]
    return [s.acked if s is not None else -1 for s in states]


async def test_three_collectors_lose_nothing_and_ticket_once(tmp_path: Path) -> None:
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)
    async with System(tmp_path, collector=short_lease_collector, postgres=True, collectors=3) as system:
        a = system.sides[0]
        by_id = {f"faults-{c.name}": c for c in system.collectors}

        b_outage = asyncio.create_task(system.sides[1].outage())
        await wait_for(lambda: system.collector_has_down(system.sides[1]), WAIT_S, "agent B's DOWN stored")
        system.collectors[0].kill9()  # mid-stream: agent B's outage is being reported, heartbeats flow
        before = _acked(system)
        await b_outage
        await wait_for(lambda: all(now > then for now, then in zip(_acked(system), before, strict=True)), WAIT_S,
                       "both agents' acks to move on after a collector was killed")
        await wait_for(system.settled, SETTLE_S, "agent B's incident ticketed and resolved")

        def created() -> int:
            with system.hook.lock:
                return sum(1 for r in system.hook.requests if r.headers.get("X-Linewarden-Event") == "ticket.created")

        def claim() -> tuple[str, str] | None:
            rows = system.read(lambda q: q("SELECT claim_worker, incident_id FROM ticket_dispatches"
                                           " WHERE action = 'create' AND state = 'in_flight'", ()))
            return (str(rows[0]["claim_worker"]), str(rows[0]["incident_id"])) if rows else None

        tickets_before = created()
        system.hook.stall_next(1)  # the vendor creates the ticket and holds its answer back
        await a.down()
        await wait_for(lambda: created() > tickets_before and claim() is not None, WAIT_S,
                       "agent A's ticket.created at the vendor")
        found = claim()
        assert found is not None
        holder, incident = found
        assert holder in by_id and by_id[holder] is not system.collectors[0]
        by_id[holder].kill9()
        survivor = next(c for c in system.collectors[1:] if c is not by_id[holder])
        await asyncio.sleep(DOWN_S)  # the outage's length (the scenario), long enough for the agent to confirm it
        await a.up()
        before = _acked(system)
        await wait_for(system.settled, SETTLE_S, "outboxes acked, incidents ticketed (the lease taken over)")
        assert all(now > then for now, then in zip(_acked(system), before, strict=True)), "acks kept moving"

        fig = system.figures("scale-out")
        fig.settled = True
        assert_nothing_lost_or_doubled(fig)
        assert fig.duplicate_requests >= 1, "the survivor sent the create again, with the same Idempotency-Key"
        create = system.read(lambda q: q("SELECT claim_worker, state FROM ticket_dispatches"
                                         " WHERE action = 'create' AND incident_id = ?", (incident,)))
        assert [(r["claim_worker"], r["state"]) for r in create] == [(f"faults-{survivor.name}", "done")]
        audit = system.read(lambda q: q("SELECT * FROM audit_log ORDER BY id", ()))
        assert audit and chain_break(audit) is None
